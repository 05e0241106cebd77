package peercred

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// diagMsg builds one sock_diag message: a struct nlmsghdr of type typ and
// sequence seq, then payload.
func diagMsg(typ uint16, seq uint32, payload []byte) []byte {
	ne := binary.NativeEndian
	l := unix.SizeofNlMsghdr + len(payload)
	b := make([]byte, nlAlign(l))
	ne.PutUint32(b[0:], uint32(l))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	copy(b[unix.SizeofNlMsghdr:], payload)
	return b
}

// diagSocket is the payload of one answer: a struct unix_diag_msg (16
// bytes), an attribute before, and UNIX_DIAG_VFS with ino and dev.
func diagSocket(ino, dev uint32) []byte {
	ne := binary.NativeEndian
	b := make([]byte, 16)
	name := []byte{9, 0, 0, 0, '/', 'x', 0, 0, 0, 0, 0, 0} // UNIX_DIAG_NAME, 5 bytes, padded
	ne.PutUint16(name[0:], 4+5)
	ne.PutUint16(name[2:], 0)
	b = append(b, name...)
	vfs := make([]byte, 12)
	ne.PutUint16(vfs[0:], 12)
	ne.PutUint16(vfs[2:], unixDiagVFS)
	ne.PutUint32(vfs[4:], ino)
	ne.PutUint32(vfs[8:], dev)
	return append(b, vfs...)
}

func TestDiagScan(t *testing.T) {
	f := diagFile{ino: 1<<32 | 77, major: 8, minor: 3}
	dev := uint32(8<<20 | 3)
	done := diagMsg(unix.NLMSG_DONE, 1, make([]byte, 4))
	for _, tt := range []struct {
		name        string
		b           []byte
		found, done bool
		err         bool
	}{
		{"the file's socket after another", append(diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagSocket(76, dev)),
			diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagSocket(77, dev))...), true, false, false},
		{"another device", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagSocket(77, 8<<20|4)), false, false, false},
		{"another request's answer", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 2, diagSocket(77, dev)), false, false, false},
		{"the end of the dump", done, false, true, false},
		{"an error", diagMsg(unix.NLMSG_ERROR, 1, []byte{0xf3, 0xff, 0xff, 0xff}), false, false, true},
		{"a truncated message", diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagSocket(77, dev))[:20], false, false, true},
	} {
		found, done, err := f.scan(tt.b, 1)
		if found != tt.found || done != tt.done || (err != nil) != tt.err {
			t.Errorf("%s: found %v, done %v, err %v; want %v, %v, error %v", tt.name, found, done, err, tt.found, tt.done, tt.err)
		}
	}
}

// FuzzDiagScan: the sock_diag parser never panics, whatever the bytes.
func FuzzDiagScan(f *testing.F) {
	f.Add(diagMsg(unix.SOCK_DIAG_BY_FAMILY, 1, diagSocket(77, 8<<20|3)))
	f.Add(diagMsg(unix.NLMSG_DONE, 1, make([]byte, 4)))
	f.Add(diagMsg(unix.NLMSG_ERROR, 1, []byte{0xf3, 0xff, 0xff, 0xff}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		diagFile{ino: 77, major: 8, minor: 3}.scan(b, 1)
	})
}
