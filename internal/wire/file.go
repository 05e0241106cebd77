package wire

import (
	"bytes"
	"encoding/binary"
)

// The file broker's operations: a worker asks the parent to open, stat, ...
// a path beneath the directories its policy allows. Requests carry a
// payload built by AppendFile; replies a payload built by AppendFileResult,
// and for OpFileOpen the descriptor.
const (
	OpFileOpen     = "file.open"
	OpFileStat     = "file.stat"
	OpFileLstat    = "file.lstat"
	OpFileAccess   = "file.access"
	OpFileReadlink = "file.readlink"
	OpFileMkdir    = "file.mkdir"
	OpFileRemove   = "file.remove"
	OpFileRename   = "file.rename"
)

// FileRequest is the payload of a file broker request.
type FileRequest struct {
	// Flag is the open(2) flags of OpFileOpen, the access(2) mode of
	// OpFileAccess, else 0.
	Flag int
	// Mode is the permission bits of a file or directory created.
	Mode uint32
	// Path is the file; Path2 the new name of OpFileRename, else empty.
	Path, Path2 string
}

// AppendFile appends the payload of a file request to dst: flags and mode
// as 4 little-endian bytes each, the length of Path in 2, Path, then Path2.
// It does not check r: a Path that is empty, either path longer than
// MaxPathLen or with a NUL byte makes a payload that DecodeFile rejects.
// Flag must fit in 32 bits, as every open flag does.
func AppendFile(dst []byte, r *FileRequest) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(r.Flag))
	dst = binary.LittleEndian.AppendUint32(dst, r.Mode)
	n := len(r.Path)
	if n > 0xffff {
		n = 0xffff // DecodeFile refuses the length anyway
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(n))
	dst = append(dst, r.Path[:n]...)
	return append(dst, r.Path2...)
}

// DecodeFile parses the payload of a file request: 10 bytes of header, a
// path that is non-empty, at most MaxPathLen bytes and free of NUL bytes,
// then a second path (possibly empty) held to the same limits. Its errors
// wrap ErrMalformed (and ErrTooLarge for a path over the limit); a parent
// answers them with CodeBadRequest.
func DecodeFile(p []byte) (FileRequest, error) {
	if len(p) < 10 {
		return FileRequest{}, malformed("file payload of %d bytes is shorter than its 10-byte header", len(p))
	}
	n := int(binary.LittleEndian.Uint16(p[8:]))
	rest := p[10:]
	if n > len(rest) {
		return FileRequest{}, malformed("file payload: path length %d exceeds the %d bytes that follow", n, len(rest))
	}
	path, path2 := rest[:n], rest[n:]
	if err := checkPath("path", path, false); err != nil {
		return FileRequest{}, err
	}
	if err := checkPath("second path", path2, true); err != nil {
		return FileRequest{}, err
	}
	return FileRequest{
		Flag:  int(int32(binary.LittleEndian.Uint32(p))),
		Mode:  binary.LittleEndian.Uint32(p[4:]),
		Path:  string(path),
		Path2: string(path2),
	}, nil
}

func checkPath(what string, b []byte, emptyOK bool) error {
	if len(b) == 0 && !emptyOK {
		return malformed("file payload: empty %s", what)
	}
	if len(b) > MaxPathLen {
		return tooLarge("file payload: %s of %d bytes exceeds limit %d", what, len(b), MaxPathLen)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return malformed("file payload: %s has a NUL byte at offset %d", what, i)
	}
	return nil
}

// AppendFileResult appends the payload of a file broker reply: the errno of
// the operation (0 for success) as 4 little-endian bytes, then the
// operation's data (a Stat for OpFileStat and OpFileLstat, the target of
// OpFileReadlink). A policy refusal is not a result but an Error message.
// A success with no data may also be sent as an empty payload, which
// privsep's worker reads as errno 0 (DecodeFileResult does not accept it).
func AppendFileResult(dst []byte, errno uint32, data []byte) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, errno)
	return append(dst, data...)
}

// DecodeFileResult parses the payload of a file broker reply. data aliases
// p. A nonzero errno comes with no data and no descriptor.
func DecodeFileResult(p []byte) (errno uint32, data []byte, err error) {
	if len(p) < 4 {
		return 0, nil, malformed("file result of %d bytes is shorter than the 4-byte errno", len(p))
	}
	errno = binary.LittleEndian.Uint32(p)
	if errno != 0 && len(p) > 4 {
		return 0, nil, malformed("file result: errno %d with %d bytes of data", errno, len(p)-4)
	}
	if errno > 0xfff {
		return 0, nil, malformed("file result: errno %d out of range", errno)
	}
	return errno, p[4:], nil
}

// Stat is a file's metadata as a file broker reply carries it: the fields
// of Linux's struct stat, each 8 little-endian bytes in this order.
type Stat struct {
	Dev, Ino, Nlink, Mode, UID, GID, Rdev uint64
	Size, Blksize, Blocks                 int64
	Atime, Mtime, Ctime                   Timespec
}

// Timespec is a time in seconds and nanoseconds since the epoch.
type Timespec struct{ Sec, Nsec int64 }

// StatLen is the length of an encoded Stat.
const StatLen = 16 * 8

// MaxPathLen is the longest path a file request carries (PATH_MAX).
const MaxPathLen = 4096

// AppendStat appends st to dst.
func AppendStat(dst []byte, st *Stat) []byte {
	for _, v := range [...]uint64{
		st.Dev, st.Ino, st.Nlink, st.Mode, st.UID, st.GID, st.Rdev,
		uint64(st.Size), uint64(st.Blksize), uint64(st.Blocks),
		uint64(st.Atime.Sec), uint64(st.Atime.Nsec), uint64(st.Mtime.Sec), uint64(st.Mtime.Nsec),
		uint64(st.Ctime.Sec), uint64(st.Ctime.Nsec),
	} {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	return dst
}

// DecodeStat parses a Stat of exactly StatLen bytes. Mode, UID and GID must
// fit in 32 bits and the nanoseconds be below a second.
func DecodeStat(p []byte) (Stat, error) {
	if len(p) != StatLen {
		return Stat{}, malformed("stat of %d bytes, want %d", len(p), StatLen)
	}
	var v [16]uint64
	for i := range v {
		v[i] = binary.LittleEndian.Uint64(p[8*i:])
	}
	st := Stat{
		Dev: v[0], Ino: v[1], Nlink: v[2], Mode: v[3], UID: v[4], GID: v[5], Rdev: v[6],
		Size: int64(v[7]), Blksize: int64(v[8]), Blocks: int64(v[9]),
		Atime: Timespec{int64(v[10]), int64(v[11])},
		Mtime: Timespec{int64(v[12]), int64(v[13])},
		Ctime: Timespec{int64(v[14]), int64(v[15])},
	}
	if st.Mode>>32 != 0 || st.UID>>32 != 0 || st.GID>>32 != 0 {
		return Stat{}, malformed("stat: mode %#x, uid %d or gid %d out of range", st.Mode, st.UID, st.GID)
	}
	for _, t := range []Timespec{st.Atime, st.Mtime, st.Ctime} {
		if t.Nsec < 0 || t.Nsec >= 1e9 {
			return Stat{}, malformed("stat: %d nanoseconds", t.Nsec)
		}
	}
	return st, nil
}
