package wire

import (
	"bytes"
	"encoding/binary"
)

// OpOpen is the built-in operation that asks the parent to open a file and
// send back its descriptor. Its payload is built by AppendOpen.
const OpOpen = "open"

// MaxPathLen is the longest path an open payload carries (PATH_MAX).
const MaxPathLen = 4096

// AppendOpen appends the payload of an OpOpen request to dst: the open(2)
// flags as 4 little-endian bytes, then the path. flag must fit in 32 bits,
// as every open flag does. AppendOpen does not check path: an empty path,
// one longer than MaxPathLen or one with a NUL byte makes a payload that
// DecodeOpen rejects.
func AppendOpen(dst []byte, path string, flag int) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(flag))
	return append(dst, path...)
}

// DecodeOpen parses the payload of an OpOpen request. The payload must be
// exactly 4 bytes of flags and a path that is non-empty, at most MaxPathLen
// bytes and free of NUL bytes. Its errors wrap ErrMalformed (and ErrTooLarge
// for a path over the limit); a parent answers them with CodeBadRequest.
func DecodeOpen(p []byte) (path string, flag int, err error) {
	if len(p) < 4 {
		return "", 0, malformed("open payload of %d bytes is shorter than the 4-byte flags", len(p))
	}
	b := p[4:]
	if len(b) == 0 {
		return "", 0, malformed("open payload: empty path")
	}
	if len(b) > MaxPathLen {
		return "", 0, tooLarge("open payload: path of %d bytes exceeds limit %d", len(b), MaxPathLen)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return "", 0, malformed("open payload: path has a NUL byte at offset %d", i)
	}
	return string(b), int(int32(binary.LittleEndian.Uint32(p))), nil
}
