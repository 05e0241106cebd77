package proc

import "testing"

// TestFDInfoPid: the Pid line of a pidfd's fdinfo; -1 for a process that
// is gone; none is an error.
func TestFDInfoPid(t *testing.T) {
	tests := []struct {
		in   string
		want int
		err  bool
	}{
		{in: "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4121\nNSpid:\t4121\n", want: 4121},
		{in: "pos:\t0\nPid:\t-1\nNSpid:\t-1\n", want: -1},
		{in: "pos:\t0\nflags:\t02000002\n", err: true},
		{in: "Pid:\tx\n", err: true},
	}
	for _, tt := range tests {
		got, err := FDInfoPid([]byte(tt.in))
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("FDInfoPid(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
