package privsep

import "testing"

func TestRaceFlags(t *testing.T) {
	for _, tc := range []struct {
		gorace          string
		sleepMS, status int
	}{
		{"", 1000, 66},
		{"atexit_sleep_ms=0", 0, 66},
		{"halt_on_error=1 atexit_sleep_ms=0 exitcode=3", 0, 3},
		{"exitcode=7,atexit_sleep_ms=0", 0, 7},
		{"log_path=/tmp/r:atexit_sleep_ms=5\texitcode=2\n", 5, 2},
		{"atexit_sleep_ms=0 atexit_sleep_ms=20", 20, 66}, // the last wins
		{`atexit_sleep_ms="0" exitcode='9'`, 0, 9},
		{"atexit_sleep_ms=zero exitcode=", 1000, 66}, // not numbers: ignored
		{"atexit_sleep_ms", 1000, 66},
		{"xatexit_sleep_ms=0 exitcodes=1", 1000, 66},
		{`log_path="a b" atexit_sleep_ms=0`, 0, 66},
		{`exitcode="4`, 1000, 4}, // unclosed quote: up to the end
		{"==0 =1 atexit_sleep_ms==0", 1000, 66},
	} {
		sleepMS, status := raceFlags(tc.gorace)
		if sleepMS != tc.sleepMS || status != tc.status {
			t.Errorf("raceFlags(%q) = %d, %d, want %d, %d", tc.gorace, sleepMS, status, tc.sleepMS, tc.status)
		}
	}
}
