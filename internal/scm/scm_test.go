//go:build linux

package scm_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/scm"
	"golang.org/x/sys/unix"
)

func TestParse(t *testing.T) {
	creds := unix.UnixCredentials(&unix.Ucred{Pid: 1, Uid: 2, Gid: 3})
	tests := []struct {
		name      string
		oob       []byte
		wantFDs   []int
		wantOther int
		wantErr   bool
	}{
		{"empty", nil, nil, 0, false},
		{"one rights message", scm.Rights(7, 8, 9), []int{7, 8, 9}, 0, false},
		{"rights then credentials", append(scm.Rights(5), creds...), []int{5}, 1, false},
		{"credentials then rights", append(append([]byte{}, creds...), scm.Rights(4, 6)...), []int{4, 6}, 1, false},
		{"truncated header", scm.Rights(3)[:5], nil, 0, true},
		{"length past the buffer keeps earlier descriptors", append(scm.Rights(11), scm.Rights(12)[:unix.CmsgLen(0)+2]...), []int{11}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fds, other, err := scm.Parse(tt.oob)
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.wantFDs, fds); diff != "" {
				t.Errorf("fds (-want +got):\n%s", diff)
			}
			if len(other) != tt.wantOther {
				t.Errorf("%d other messages, want %d", len(other), tt.wantOther)
			}
		})
	}
}

// FuzzParse checks that Parse never panics and never reports a descriptor
// that is not in the buffer's SCM_RIGHTS payloads.
func FuzzParse(f *testing.F) {
	f.Add(scm.Rights(3))
	f.Add(append(scm.Rights(3, 4), unix.UnixCredentials(&unix.Ucred{Pid: 1})...))
	f.Fuzz(func(t *testing.T, oob []byte) {
		fds, other, _ := scm.Parse(oob)
		if 4*len(fds) > len(oob) {
			t.Fatalf("%d descriptors from %d bytes", len(fds), len(oob))
		}
		for _, m := range other {
			if len(m.Data) > len(oob) {
				t.Fatalf("message data of %d bytes from %d", len(m.Data), len(oob))
			}
		}
	})
}

func TestAppendRights(t *testing.T) {
	for _, fds := range [][]int{{3}, {4, 5}, {6, 7, 8}} {
		got := scm.AppendRights(make([]byte, 0, 64), fds...)
		if diff := cmp.Diff(scm.Rights(fds...), got); diff != "" {
			t.Errorf("AppendRights(%v) (-Rights +got):\n%s", fds, diff)
		}
		if n := testing.AllocsPerRun(10, func() { scm.AppendRights(make([]byte, 0, 64), fds...) }); n != 0 {
			t.Errorf("AppendRights(%v) with room: %v allocations", fds, n)
		}
	}
}
