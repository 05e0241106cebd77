// Package wire is the message codec of the privsep protocol: the bytes a
// privileged parent and its unprivileged workers exchange over a
// SOCK_SEQPACKET socket pair, one message per datagram, with descriptors
// attached to a datagram as SCM_RIGHTS.
//
// It is pure encoding: it makes no system calls, owns no descriptors and
// runs on every OS. The socket I/O lives in privsep, the control-message
// parsing in internal/scm.
//
// # Format
//
// Every message is a 16-byte little-endian header, then oplen bytes of
// operation name, then paylen bytes of payload:
//
//	off size field
//	0   1    version  Version (1)
//	1   1    kind     Kind: Hello, Welcome, Request, Reply, Error, Stop
//	2   1    nfds     descriptors attached to this datagram (SCM_RIGHTS)
//	3   1    flags    reserved, 0
//	4   4    id       request id: nonzero on Request, Reply and Error, else 0
//	8   2    oplen    length of the operation name (at most MaxOpLen)
//	10  2    code     error code: nonzero on Error, else 0
//	12  4    paylen   payload length (at most Limits.MaxPayload)
//	16  ...  op, payload
//
// Request carries the operation name in op, Hello the worker's role name;
// both are non-empty and only [a-z0-9._-]. The other kinds have an empty op.
// Descriptors ride only on Request and Reply, and one on a spawned worker's
// Hello: the connection it is served on from then on (made once no other
// process of its UID can take it; the one it was started with is dropped).
// The header is exact: a datagram with a byte more or less than
// 16+oplen+paylen is malformed. [Decode] enforces every rule and [Append]
// refuses to encode what Decode would refuse, so a peer that sends anything
// else broke the protocol.
//
// # Receiving
//
// A receive loop reads each datagram into a buffer of [Limits.BufferSize]
// bytes, one more than the largest valid message, so a datagram that is too
// large shows up as either MSG_TRUNC or a full buffer, never as a valid
// message cut short; and with room in the control buffer for
// Limits.MaxFiles descriptors:
//
//	buf := make([]byte, lim.BufferSize())
//	oob := make([]byte, scm.Space(lim.MaxFiles))
//	n, oobn, flags, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_CMSG_CLOEXEC)
//	...
//	fds, _, err := scm.Parse(oob[:oobn]) // close fds on every error below
//	if flags&unix.MSG_CTRUNC != 0 { ... scm.ErrTruncated }
//	m, err := wire.Decode(buf[:n], len(fds), lim)
//
// The nfds field lets the receiver tell a message that was meant to carry
// descriptors from one whose descriptors the kernel dropped (a control
// buffer too small, or the receiver at RLIMIT_NOFILE): Decode rejects a
// count that differs from what arrived. Decode never takes ownership of
// descriptors; whoever received them closes them when it returns an error.
//
// Every error Decode returns wraps [ErrMalformed], and those about a size
// over a limit also wrap [ErrTooLarge]. A worker that sends a malformed
// message is to be disconnected, not answered.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Version is the protocol version in every header.
const Version = 1

// HeaderLen is the length of the fixed header that starts every message.
const HeaderLen = 16

// MaxOpLen is the longest operation (or role) name.
const MaxOpLen = 64

// Error codes, the code field of a KindError message.
const (
	CodeFailed      uint16 = 1 // the handler returned an error
	CodeDenied      uint16 = 2 // policy refused the request
	CodeUnknownOp   uint16 = 3 // no handler for the operation
	CodeBadRequest  uint16 = 4 // the payload is invalid for the operation
	CodeUnavailable uint16 = 5 // the parent is shutting down
)

// ErrMalformed is wrapped by every error of Decode and Append and of the
// payload decoders: the bytes break the protocol.
var ErrMalformed = errors.New("wire: malformed message")

// ErrTooLarge is wrapped, together with ErrMalformed, by the errors about a
// size over a limit: a datagram, op, payload or descriptor count.
var ErrTooLarge error = &formatError{msg: "message too large", err: ErrMalformed}

// formatError is a description of what broke the protocol, wrapping
// ErrMalformed or ErrTooLarge.
type formatError struct {
	msg string
	err error
}

func (e *formatError) Error() string { return "wire: " + e.msg }
func (e *formatError) Unwrap() error { return e.err }

func malformed(format string, args ...any) error {
	return &formatError{msg: fmt.Sprintf(format, args...), err: ErrMalformed}
}

func tooLarge(format string, args ...any) error {
	return &formatError{msg: fmt.Sprintf(format, args...), err: ErrTooLarge}
}

// Msg is one decoded message.
type Msg struct {
	Kind Kind
	ID   uint32 // request id: nonzero on Request, Reply and Error, else 0
	Code uint16 // nonzero on Error, else 0
	Op   string // operation name on Request, role name on Hello, else empty

	// Payload aliases the input of Decode; it is nil when empty.
	Payload []byte

	// NFiles is the number of descriptors sent with the message.
	NFiles int
}

// Len returns the encoded length of m.
func (m *Msg) Len() int { return HeaderLen + len(m.Op) + len(m.Payload) }

// Append encodes m after dst and returns the extended slice. It checks m
// with the same rules as Decode under lim and returns dst unchanged and an
// error rather than produce a message Decode would reject. Append does not
// allocate when dst has room for m.Len() more bytes.
func Append(dst []byte, m *Msg, lim Limits) ([]byte, error) {
	if m.NFiles < 0 {
		return dst, malformed("nfds %d is negative", m.NFiles)
	}
	if err := checkSizes(m.Kind, len(m.Op), uint64(len(m.Payload)), m.NFiles, lim); err != nil {
		return dst, err
	}
	if err := checkFields(m.Kind, m.NFiles, m.ID, m.Code, m.Op); err != nil {
		return dst, err
	}
	dst = slices.Grow(dst, m.Len())
	dst = append(dst, Version, byte(m.Kind), byte(m.NFiles), 0)
	dst = binary.LittleEndian.AppendUint32(dst, m.ID)
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(m.Op)))
	dst = binary.LittleEndian.AppendUint16(dst, m.Code)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(m.Payload)))
	dst = append(dst, m.Op...)
	dst = append(dst, m.Payload...)
	return dst, nil
}

// Decode parses the datagram b, which arrived with nfds descriptors.
//
// On success Msg.Payload aliases b, and the only allocation is Op's string
// for an operation or role name other than the built-in OpListen, OpFileOpen
// and OpFileStat. Decode never panics, and every error it returns wraps
// ErrMalformed. It does not own the descriptors: the caller closes them
// when Decode returns an error.
//
// Decode does not validate lim (do that once with Limits.Validate); with
// any lim it accepts nothing over the hard caps MaxPayloadCap and
// MaxFilesCap.
func Decode(b []byte, nfds int, lim Limits) (Msg, error) {
	if len(b) < HeaderLen {
		return Msg{}, malformed("datagram of %d bytes is shorter than the %d-byte header", len(b), HeaderLen)
	}
	if max := lim.maxLen(); len(b) > max {
		return Msg{}, tooLarge("datagram of %d bytes exceeds the largest valid message of %d bytes", len(b), max)
	}
	if b[0] != Version {
		return Msg{}, malformed("version %d, want %d", b[0], Version)
	}
	var (
		kind   = Kind(b[1])
		hnfds  = int(b[2])
		flags  = b[3]
		id     = binary.LittleEndian.Uint32(b[4:])
		oplen  = int(binary.LittleEndian.Uint16(b[8:]))
		code   = binary.LittleEndian.Uint16(b[10:])
		paylen = binary.LittleEndian.Uint32(b[12:])
	)
	if !kind.valid() {
		return Msg{}, malformed("unknown kind %d", uint8(kind))
	}
	if flags != 0 {
		return Msg{}, malformed("flags %#02x, want 0", flags)
	}
	if err := checkSizes(kind, oplen, uint64(paylen), hnfds, lim); err != nil {
		return Msg{}, err
	}
	// checkSizes bounded oplen and paylen: the sum fits in an int.
	if want := HeaderLen + oplen + int(paylen); want != len(b) {
		return Msg{}, malformed("datagram of %d bytes, header says %d (%d + oplen %d + paylen %d)",
			len(b), want, HeaderLen, oplen, paylen)
	}
	if hnfds != nfds {
		return Msg{}, malformed("nfds %d in header, %d arrived", hnfds, nfds)
	}
	op := b[HeaderLen : HeaderLen+oplen]
	if err := checkFields(kind, hnfds, id, code, op); err != nil {
		return Msg{}, err
	}
	m := Msg{Kind: kind, ID: id, Code: code, Op: internOp(op), NFiles: hnfds}
	if paylen > 0 {
		m.Payload = b[HeaderLen+oplen : len(b) : len(b)]
	}
	return m, nil
}

// checkSizes checks the kind and the sizes against the limits, the rules
// Decode applies before it trusts the header's lengths.
func checkSizes(k Kind, oplen int, paylen uint64, nfds int, lim Limits) error {
	if !k.valid() {
		return malformed("unknown kind %d", uint8(k))
	}
	if oplen > MaxOpLen {
		return tooLarge("oplen %d exceeds limit %d", oplen, MaxOpLen)
	}
	if max := lim.maxPayload(); paylen > uint64(max) {
		return tooLarge("paylen %d exceeds limit %d", paylen, max)
	}
	if max := lim.maxFiles(); nfds > max {
		return tooLarge("nfds %d exceeds limit %d", nfds, max)
	}
	return nil
}

// checkFields checks the rules that tie the fields to the kind.
func checkFields[T string | []byte](k Kind, nfds int, id uint32, code uint16, op T) error {
	if k == KindHello && nfds > 1 {
		return malformed("nfds %d on %v, want 0 or 1 (the worker's connection)", nfds, k)
	}
	if nfds != 0 && k != KindRequest && k != KindReply && k != KindHello {
		return malformed("nfds %d on %v, want 0 (only Request, Reply and Hello carry descriptors)", nfds, k)
	}
	if k == KindError {
		if code == 0 {
			return malformed("code 0 on %v, want nonzero", k)
		}
	} else if code != 0 {
		return malformed("code %d on %v, want 0", code, k)
	}
	switch k {
	case KindRequest, KindReply, KindError:
		if id == 0 {
			return malformed("id 0 on %v, want nonzero", k)
		}
	default:
		if id != 0 {
			return malformed("id %d on %v, want 0", id, k)
		}
	}
	switch k {
	case KindRequest, KindHello:
		if len(op) == 0 {
			return malformed("empty op on %v", k)
		}
		for i := 0; i < len(op); i++ {
			if !isOpByte(op[i]) {
				return malformed("op %q on %v: byte %#02x at offset %d is not in [a-z0-9._-]", op, k, op[i], i)
			}
		}
	default:
		if len(op) != 0 {
			return malformed("op %q on %v, want empty", op, k)
		}
	}
	return nil
}

func isOpByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// internOp returns op as a string, without allocating for the built-in
// operations and those passed to Intern.
func internOp(op []byte) string {
	switch string(op) { // no allocation: the compiler compares in place
	case "":
		return ""
	case OpListen:
		return OpListen
	case OpFileOpen:
		return OpFileOpen
	case OpFileStat:
		return OpFileStat
	}
	if m := interned.Load(); m != nil {
		if s, ok := (*m)[string(op)]; ok { // no allocation either
			return s
		}
	}
	return string(op)
}

// maxInterned bounds the names Intern keeps.
const maxInterned = 1024

// interned holds the names passed to Intern. It is replaced, never
// changed, so that Decode reads it without a lock.
var (
	interned   atomic.Pointer[map[string]string]
	internedMu sync.Mutex
)

// Intern makes Decode return op without allocating: for the names of the
// operations a program serves (privsep's Supervisor.Handle), decoded once
// per call. Names past the first 1,024 are not kept.
func Intern(op string) {
	internedMu.Lock()
	defer internedMu.Unlock()
	m := map[string]string{}
	if old := interned.Load(); old != nil {
		if _, ok := (*old)[op]; ok || len(*old) >= maxInterned {
			return
		}
		m = maps.Clone(*old)
	}
	m[op] = op
	interned.Store(&m)
}
