package proc_test

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/proc"
)

// line is a /proc/PID/stat line of the given fields, the others zero.
func line(pid int, comm string, state byte, ppid int, start uint64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d (%s) %c %d", pid, comm, state, ppid)
	for i := 5; i < 22; i++ {
		b.WriteString(" 0")
	}
	fmt.Fprintf(&b, " %d 3133440 416 18446744073709551615 0 0\n", start)
	return b.Bytes()
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		want    proc.Stat
		wantErr bool
	}{
		{"plain", line(42, "cat", 'R', 1, 2006533), proc.Stat{PID: 42, State: 'R', PPID: 1, StartTime: 2006533}, false},
		{"a real line", []byte("10714 (cat) R 10711 10711 32298 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 2006533 3133440 416 18446744073709551615 94898376802304 94898376822185 140723979981696 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0 94898376838192 94898376839808 94898938650624 140723979983347 140723979983367 140723979983367 140723979984875 0\n"),
			proc.Stat{PID: 10714, State: 'R', PPID: 10711, StartTime: 2006533}, false},
		{"init has no parent", line(1, "init", 'S', 0, 5), proc.Stat{PID: 1, State: 'S', PPID: 0, StartTime: 5}, false},
		{"a command name that mimics fields", line(7, "x) Z 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 99 (", 'S', 3, 11), proc.Stat{PID: 7, State: 'S', PPID: 3, StartTime: 11}, false},
		{"a command name with a newline and spaces", line(8, "a\n b (c)", 'Z', 2, 12), proc.Stat{PID: 8, State: 'Z', PPID: 2, StartTime: 12}, false},
		{"empty command name", line(9, "", 'I', 2, 13), proc.Stat{PID: 9, State: 'I', PPID: 2, StartTime: 13}, false},
		{"empty", nil, proc.Stat{}, true},
		{"no command name", []byte("1 S 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5"), proc.Stat{}, true},
		{"no closing parenthesis", []byte("1 (init S 0"), proc.Stat{}, true},
		{"parentheses the wrong way", []byte("1 )init( S 0"), proc.Stat{}, true},
		{"too short for starttime", line(1, "x", 'S', 0, 5)[:40], proc.Stat{}, true},
		{"state of two letters", bytes.Replace(line(1, "x", 'S', 0, 5), []byte(" S "), []byte(" SS "), 1), proc.Stat{}, true},
		{"negative ppid", line(1, "x", 'S', -1, 5), proc.Stat{}, true},
		{"pid not a number", bytes.Replace(line(1, "x", 'S', 0, 5), []byte("1 ("), []byte("one ("), 1), proc.Stat{}, true},
		{"starttime not a number", bytes.Replace(line(1, "x", 'S', 0, 5), []byte(" 5 3133440"), []byte(" 5x 3133440"), 1), proc.Stat{}, true},
		{"ppid past int32", line(1, "x", 'S', 1<<31, 5), proc.Stat{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := proc.ParseStat(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseStat(%q) err = %v, want error: %v", tt.in, err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseStat(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestReadStat(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/PID/stat is Linux's")
	}
	st, err := proc.ReadStat(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if st.PID != os.Getpid() || st.PPID != os.Getppid() || st.StartTime == 0 {
		t.Errorf("ReadStat(self) = %+v, want pid %d, ppid %d and a start time", st, os.Getpid(), os.Getppid())
	}
	if _, err := proc.ReadStat(-1); err == nil {
		t.Error("ReadStat(-1) succeeded")
	}
}

// FuzzStat checks that ParseStat never panics, and that whatever it
// accepts it reads from after the last ')': a command name, whatever it
// holds, never decides the fields.
func FuzzStat(f *testing.F) {
	f.Add(line(42, "cat", 'R', 1, 2006533), "x) R 1 2 3")
	f.Add(line(1, "init", 'S', 0, 5), "")
	f.Fuzz(func(t *testing.T, b []byte, comm string) {
		st, err := proc.ParseStat(b)
		if err == nil && (st.PID < 0 || st.PPID < 0) {
			t.Fatalf("ParseStat(%q) = %+v: negative pid", b, st)
		}
		// The same fields under any command name parse the same.
		i := bytes.IndexByte(b, '(')
		j := bytes.LastIndexByte(b, ')')
		if err != nil || i < 0 || j < i || bytes.IndexByte([]byte(comm), ')') >= 0 {
			return
		}
		renamed := append(append(append(append([]byte{}, b[:i+1]...), comm...), ')'), b[j+1:]...)
		st2, err := proc.ParseStat(renamed)
		if err != nil {
			t.Fatalf("ParseStat(%q) = %v after ParseStat(%q) succeeded", renamed, err, b)
		}
		if st2 != st {
			t.Fatalf("ParseStat(%q) = %+v, ParseStat(%q) = %+v", renamed, st2, b, st)
		}
	})
}
