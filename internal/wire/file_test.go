package wire_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/wire"
)

func TestFile(t *testing.T) {
	for _, r := range []wire.FileRequest{
		{Path: "/etc/hosts"},
		{Flag: 0o2000000 | 0o100 | 0o2, Mode: 0o640, Path: "/var/lib/app/db"},
		{Flag: -1, Mode: 0xffffffff, Path: "/negative"},
		{Path: "/a", Path2: "/b"},
		{Path: strings.Repeat("p", wire.MaxPathLen), Path2: strings.Repeat("q", wire.MaxPathLen)},
		{Path: "/ünïcode and spaces/\n"},
	} {
		p := wire.AppendFile(nil, &r)
		got, err := wire.DecodeFile(p)
		if err != nil {
			t.Errorf("DecodeFile(AppendFile(%+v)): %v", r, err)
			continue
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("DecodeFile(AppendFile(%+v)) (-want +got):\n%s", r, diff)
		}
	}
}

func TestDecodeFileMalformed(t *testing.T) {
	long := strings.Repeat("p", wire.MaxPathLen+1)
	tests := []struct {
		name     string
		p        []byte
		want     string
		tooLarge bool
	}{
		{"an empty payload", nil, "file payload of 0 bytes is shorter than its 10-byte header", false},
		{"a short header", make([]byte, 9), "file payload of 9 bytes is shorter than its 10-byte header", false},
		{"no path", wire.AppendFile(nil, &wire.FileRequest{}), "file payload: empty path", false},
		{"only a second path", wire.AppendFile(nil, &wire.FileRequest{Path2: "/b"}), "file payload: empty path", false},
		{"a path length past the end", append(make([]byte, 8), 5, 0, '/', 'a'), "file payload: path length 5 exceeds the 2 bytes that follow", false},
		{"a path over MaxPathLen", wire.AppendFile(nil, &wire.FileRequest{Path: long}), "file payload: path of 4097 bytes exceeds limit 4096", true},
		{"a path over 64 KiB", wire.AppendFile(nil, &wire.FileRequest{Path: strings.Repeat("p", 70000)}), "file payload: path of 65535 bytes exceeds limit 4096", true},
		{"a second path over MaxPathLen", wire.AppendFile(nil, &wire.FileRequest{Path: "/a", Path2: long}), "file payload: second path of 4097 bytes exceeds limit 4096", true},
		{"a NUL in the path", wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/passwd\x00.txt"}), "file payload: path has a NUL byte at offset 11", false},
		{"a NUL in the second path", wire.AppendFile(nil, &wire.FileRequest{Path: "/a", Path2: "\x00"}), "file payload: second path has a NUL byte at offset 0", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := wire.DecodeFile(tt.p)
			checkPayloadErr(t, err, tt.want, tt.tooLarge)
			if r != (wire.FileRequest{}) {
				t.Errorf("DecodeFile returned %+v with its error", r)
			}
		})
	}
}

func TestFileResult(t *testing.T) {
	st := wire.Stat{Dev: 1, Ino: 2, Nlink: 3, Mode: 0o100644, UID: 4, GID: 5, Rdev: 6, Size: -7, Blksize: 4096, Blocks: 8,
		Atime: wire.Timespec{Sec: -1, Nsec: 999999999}, Mtime: wire.Timespec{Sec: 1 << 40}, Ctime: wire.Timespec{Nsec: 1}}
	p := wire.AppendFileResult(nil, 0, wire.AppendStat(nil, &st))
	errno, data, err := wire.DecodeFileResult(p)
	if err != nil || errno != 0 {
		t.Fatalf("DecodeFileResult: %d, %v", errno, err)
	}
	got, err := wire.DecodeStat(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(st, got); diff != "" {
		t.Errorf("stat (-want +got):\n%s", diff)
	}
	if errno, data, err := wire.DecodeFileResult(wire.AppendFileResult(nil, 2, nil)); errno != 2 || len(data) != 0 || err != nil {
		t.Errorf("errno result: %d, %q, %v", errno, data, err)
	}
	for _, tt := range []struct {
		name string
		p    []byte
		want string
	}{
		{"a short result", []byte{0, 0}, "file result of 2 bytes is shorter than the 4-byte errno"},
		{"an errno with data", wire.AppendFileResult(nil, 2, []byte("x")), "file result: errno 2 with 1 bytes of data"},
		{"an errno out of range", wire.AppendFileResult(nil, 1<<20, nil), "file result: errno 1048576 out of range"},
	} {
		_, _, err := wire.DecodeFileResult(tt.p)
		checkPayloadErr(t, err, tt.want, false)
	}
	for _, tt := range []struct {
		name string
		p    []byte
		want string
	}{
		{"a short stat", make([]byte, wire.StatLen-1), "stat of 127 bytes, want 128"},
		{"a mode over 32 bits", wire.AppendStat(nil, &wire.Stat{Mode: 1 << 32}), "stat: mode 0x100000000, uid 0 or gid 0 out of range"},
		{"a second's nanoseconds", wire.AppendStat(nil, &wire.Stat{Mtime: wire.Timespec{Nsec: 1e9}}), "stat: 1000000000 nanoseconds"},
	} {
		_, err := wire.DecodeStat(tt.p)
		checkPayloadErr(t, err, tt.want, false)
	}
}

// FuzzDecodeFile checks that DecodeFile never panics and that whatever it
// accepts AppendFile encodes back to the same bytes.
func FuzzDecodeFile(f *testing.F) {
	f.Add(wire.AppendFile(nil, &wire.FileRequest{Flag: 0o2000000, Path: "/etc/hosts"}))
	f.Add(wire.AppendFile(nil, &wire.FileRequest{Path: "/a", Path2: "/b"}))
	f.Fuzz(func(t *testing.T, p []byte) {
		r, err := wire.DecodeFile(p)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if enc := wire.AppendFile(nil, &r); !bytes.Equal(enc, p) {
			t.Fatalf("re-encoded %q, want %q", enc, p)
		}
	})
}

// FuzzDecodeFileResult checks that DecodeFileResult and DecodeStat never
// panic and that what they accept encodes back to the same bytes.
func FuzzDecodeFileResult(f *testing.F) {
	f.Add(wire.AppendFileResult(nil, 0, wire.AppendStat(nil, &wire.Stat{Mode: 0o40755, Size: 4096})))
	f.Add(wire.AppendFileResult(nil, 2, nil))
	f.Add(wire.AppendFileResult(nil, 0, []byte("target")))
	f.Fuzz(func(t *testing.T, p []byte) {
		errno, data, err := wire.DecodeFileResult(p)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if enc := wire.AppendFileResult(nil, errno, data); !bytes.Equal(enc, p) {
			t.Fatalf("re-encoded %q, want %q", enc, p)
		}
		st, err := wire.DecodeStat(data)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if enc := wire.AppendStat(nil, &st); !bytes.Equal(enc, data) {
			t.Fatalf("stat re-encoded %q, want %q", enc, data)
		}
	})
}
