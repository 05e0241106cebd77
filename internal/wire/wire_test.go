package wire_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/internal/wire"
)

var lim = wire.DefaultLimits

// header is a message header as raw fields, so tests can build datagrams
// that Append refuses to.
type header struct {
	version, kind, nfds, flags uint8
	id                         uint32
	oplen, code                uint16
	paylen                     uint32
}

// raw encodes h, op and payload exactly as given, without any check.
func raw(h header, op, payload string) []byte {
	b := make([]byte, wire.HeaderLen, wire.HeaderLen+len(op)+len(payload))
	b[0], b[1], b[2], b[3] = h.version, h.kind, h.nfds, h.flags
	binary.LittleEndian.PutUint32(b[4:], h.id)
	binary.LittleEndian.PutUint16(b[8:], h.oplen)
	binary.LittleEndian.PutUint16(b[10:], h.code)
	binary.LittleEndian.PutUint32(b[12:], h.paylen)
	b = append(b, op...)
	return append(b, payload...)
}

// good returns the header of a valid message with op and payload.
func good(kind wire.Kind, op, payload string) header {
	h := header{version: wire.Version, kind: uint8(kind), oplen: uint16(len(op)), paylen: uint32(len(payload))}
	switch kind {
	case wire.KindRequest, wire.KindReply:
		h.id = 7
	case wire.KindError:
		h.id, h.code = 7, wire.CodeDenied
	}
	return h
}

// rawMsg encodes m without any check, as a peer that ignores the rules
// would.
func rawMsg(m *wire.Msg) []byte {
	return raw(header{
		version: wire.Version,
		kind:    uint8(m.Kind),
		nfds:    uint8(m.NFiles),
		id:      m.ID,
		oplen:   uint16(len(m.Op)),
		code:    m.Code,
		paylen:  uint32(len(m.Payload)),
	}, m.Op, string(m.Payload))
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte{0xa5}, lim.MaxPayload)
	tests := []struct {
		name string
		msg  wire.Msg
	}{
		{"Hello carries the role name", wire.Msg{Kind: wire.KindHello, Op: "http-worker"}},
		{"Hello may carry a payload", wire.Msg{Kind: wire.KindHello, Op: "w", Payload: []byte("v1")}},
		{"Hello may carry a connection", wire.Msg{Kind: wire.KindHello, Op: "w", NFiles: 1}},
		{"Welcome is a bare header", wire.Msg{Kind: wire.KindWelcome}},
		{"Welcome may carry a payload", wire.Msg{Kind: wire.KindWelcome, Payload: []byte{0}}},
		{"Request with op and payload", wire.Msg{Kind: wire.KindRequest, ID: 1, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts"})}},
		{"Request with descriptors", wire.Msg{Kind: wire.KindRequest, ID: 42, Op: "pass.fds_2", NFiles: 3}},
		{"Request with the longest op", wire.Msg{Kind: wire.KindRequest, ID: 1, Op: strings.Repeat("a", wire.MaxOpLen)}},
		{"Request with the largest payload", wire.Msg{Kind: wire.KindRequest, ID: 1, Op: "x", Payload: big}},
		{"Request with the most descriptors", wire.Msg{Kind: wire.KindRequest, ID: 1, Op: "x", NFiles: lim.MaxFiles}},
		{"Request with the largest id", wire.Msg{Kind: wire.KindRequest, ID: 1<<32 - 1, Op: "x"}},
		{"Reply with a descriptor", wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: 1}},
		{"Reply with a payload", wire.Msg{Kind: wire.KindReply, ID: 9, Payload: []byte("ok")}},
		{"Error with a code and text", wire.Msg{Kind: wire.KindError, ID: 3, Code: wire.CodeDenied, Payload: []byte("not allowed")}},
		{"Error with the largest code", wire.Msg{Kind: wire.KindError, ID: 3, Code: 0xffff}},
		{"Stop is a bare header", wire.Msg{Kind: wire.KindStop}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := wire.Append([]byte("prefix"), &tt.msg, lim)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if !bytes.HasPrefix(b, []byte("prefix")) {
				t.Fatalf("Append lost the prefix of dst: % x", b)
			}
			b = b[len("prefix"):]
			if len(b) != tt.msg.Len() {
				t.Errorf("encoded %d bytes, Len says %d", len(b), tt.msg.Len())
			}
			got, err := wire.Decode(b, tt.msg.NFiles, lim)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.msg, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name     string
		b        []byte
		nfds     int // descriptors that arrived
		want     string
		tooLarge bool
	}{
		{"a datagram shorter than the header", raw(good(wire.KindStop, "", ""), "", "")[:15], 0,
			"datagram of 15 bytes is shorter than the 16-byte header", false},
		{"an empty datagram", nil, 0,
			"datagram of 0 bytes is shorter than the 16-byte header", false},
		{"a datagram over the largest valid message", make([]byte, lim.BufferSize()), 0,
			"datagram of 65617 bytes exceeds the largest valid message of 65616 bytes", true},
		{"version 0", raw(header{kind: 6}, "", ""), 0,
			"version 0, want 1", false},
		{"version 2", raw(header{version: 2, kind: 6}, "", ""), 0,
			"version 2, want 1", false},
		{"kind 0", raw(header{version: 1}, "", ""), 0,
			"unknown kind 0", false},
		{"kind 7", raw(header{version: 1, kind: 7}, "", ""), 0,
			"unknown kind 7", false},
		{"reserved flags set", raw(header{version: 1, kind: 6, flags: 0x80}, "", ""), 0,
			"flags 0x80, want 0", false},
		{"oplen over MaxOpLen", raw(good(wire.KindRequest, strings.Repeat("a", 65), ""), strings.Repeat("a", 65), ""), 0,
			"oplen 65 exceeds limit 64", true},
		{"paylen over the limit", raw(header{version: 1, kind: 4, id: 1, paylen: 70000}, "", ""), 0,
			"paylen 70000 exceeds limit 65536", true},
		{"paylen at the top of uint32", raw(header{version: 1, kind: 4, id: 1, paylen: 1<<32 - 1}, "", ""), 0,
			"paylen 4294967295 exceeds limit 65536", true},
		{"a payload shorter than paylen", raw(good(wire.KindReply, "", "0123456789"), "", "01234"), 0,
			"datagram of 21 bytes, header says 26 (16 + oplen 0 + paylen 10)", false},
		{"an op shorter than oplen", raw(good(wire.KindRequest, "open", ""), "op", ""), 0,
			"datagram of 18 bytes, header says 20 (16 + oplen 4 + paylen 0)", false},
		{"trailing bytes after the payload", raw(good(wire.KindReply, "", "ab"), "", "abc"), 0,
			"datagram of 19 bytes, header says 18 (16 + oplen 0 + paylen 2)", false},
		{"nfds over the limit", raw(header{version: 1, kind: 3, nfds: 17, id: 1, oplen: 1}, "x", ""), 17,
			"nfds 17 exceeds limit 16", true},
		{"nfds over SCM_MAX_FD", raw(header{version: 1, kind: 3, nfds: 255, id: 1, oplen: 1}, "x", ""), 255,
			"nfds 255 exceeds limit 16", true},
		{"fewer descriptors than nfds (dropped by the kernel)", raw(header{version: 1, kind: 4, nfds: 2, id: 1}, "", ""), 1,
			"nfds 2 in header, 1 arrived", false},
		{"descriptors the header does not announce", raw(good(wire.KindReply, "", ""), "", ""), 1,
			"nfds 0 in header, 1 arrived", false},
		{"two descriptors on Hello", raw(header{version: 1, kind: 1, nfds: 2, oplen: 1}, "w", ""), 2,
			"nfds 2 on Hello, want 0 or 1 (the worker's connection)", false},
		{"descriptors on Welcome", raw(header{version: 1, kind: 2, nfds: 1}, "", ""), 1,
			"nfds 1 on Welcome, want 0 (only Request, Reply and Hello carry descriptors)", false},
		{"descriptors on Error", raw(header{version: 1, kind: 5, nfds: 3, id: 1, code: 1}, "", ""), 3,
			"nfds 3 on Error, want 0 (only Request, Reply and Hello carry descriptors)", false},
		{"descriptors on Stop", raw(header{version: 1, kind: 6, nfds: 1}, "", ""), 1,
			"nfds 1 on Stop, want 0 (only Request, Reply and Hello carry descriptors)", false},
		{"code 0 on Error", raw(header{version: 1, kind: 5, id: 1}, "", ""), 0,
			"code 0 on Error, want nonzero", false},
		{"a code on Reply", raw(header{version: 1, kind: 4, id: 1, code: 2}, "", ""), 0,
			"code 2 on Reply, want 0", false},
		{"a code on Hello", raw(header{version: 1, kind: 1, code: 5, oplen: 1}, "w", ""), 0,
			"code 5 on Hello, want 0", false},
		{"id 0 on Request", raw(header{version: 1, kind: 3, oplen: 1}, "x", ""), 0,
			"id 0 on Request, want nonzero", false},
		{"id 0 on Reply", raw(header{version: 1, kind: 4}, "", ""), 0,
			"id 0 on Reply, want nonzero", false},
		{"id 0 on Error", raw(header{version: 1, kind: 5, code: 1}, "", ""), 0,
			"id 0 on Error, want nonzero", false},
		{"an id on Hello", raw(header{version: 1, kind: 1, id: 5, oplen: 1}, "w", ""), 0,
			"id 5 on Hello, want 0", false},
		{"an id on Welcome", raw(header{version: 1, kind: 2, id: 5}, "", ""), 0,
			"id 5 on Welcome, want 0", false},
		{"an id on Stop", raw(header{version: 1, kind: 6, id: 1 << 31}, "", ""), 0,
			"id 2147483648 on Stop, want 0", false},
		{"an empty op on Request", raw(good(wire.KindRequest, "", ""), "", ""), 0,
			"empty op on Request", false},
		{"an empty role on Hello", raw(good(wire.KindHello, "", ""), "", ""), 0,
			"empty op on Hello", false},
		{"an upper-case op", raw(good(wire.KindRequest, "Open", ""), "Open", ""), 0,
			`op "Open" on Request: byte 0x4f at offset 0 is not in [a-z0-9._-]`, false},
		{"a slash in op", raw(good(wire.KindRequest, "a/b", ""), "a/b", ""), 0,
			`op "a/b" on Request: byte 0x2f at offset 1 is not in [a-z0-9._-]`, false},
		{"a NUL in the role", raw(good(wire.KindHello, "w\x00", ""), "w\x00", ""), 0,
			`op "w\x00" on Hello: byte 0x00 at offset 1 is not in [a-z0-9._-]`, false},
		{"a non-ASCII op", raw(good(wire.KindRequest, "é", ""), "é", ""), 0,
			`op "é" on Request: byte 0xc3 at offset 0 is not in [a-z0-9._-]`, false},
		{"an op on Welcome", raw(good(wire.KindWelcome, "x", ""), "x", ""), 0,
			`op "x" on Welcome, want empty`, false},
		{"an op on Reply", raw(good(wire.KindReply, "open", ""), "open", ""), 0,
			`op "open" on Reply, want empty`, false},
		{"an op on Error", raw(good(wire.KindError, "x", ""), "x", ""), 0,
			`op "x" on Error, want empty`, false},
		{"an op on Stop", raw(good(wire.KindStop, "x", ""), "x", ""), 0,
			`op "x" on Stop, want empty`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := wire.Decode(tt.b, tt.nfds, lim)
			if err == nil {
				t.Fatalf("Decode = %+v, want error %q", m, tt.want)
			}
			if got, want := err.Error(), "wire: "+tt.want; got != want {
				t.Errorf("error %q, want %q", got, want)
			}
			if !errors.Is(err, wire.ErrMalformed) {
				t.Errorf("errors.Is(%v, ErrMalformed) = false", err)
			}
			if got := errors.Is(err, wire.ErrTooLarge); got != tt.tooLarge {
				t.Errorf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, got, tt.tooLarge)
			}
			if diff := cmp.Diff(wire.Msg{}, m); diff != "" {
				t.Errorf("Decode returned a message with its error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAppendRefuses(t *testing.T) {
	tests := []struct {
		name     string
		msg      wire.Msg
		want     string
		tooLarge bool
	}{
		{"an unknown kind", wire.Msg{Kind: 0}, "unknown kind 0", false},
		{"an op over MaxOpLen", wire.Msg{Kind: wire.KindRequest, ID: 1, Op: strings.Repeat("a", 65)}, "oplen 65 exceeds limit 64", true},
		{"a payload over the limit", wire.Msg{Kind: wire.KindReply, ID: 1, Payload: make([]byte, lim.MaxPayload+1)}, "paylen 65537 exceeds limit 65536", true},
		{"more descriptors than the limit", wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: 17}, "nfds 17 exceeds limit 16", true},
		{"a negative descriptor count", wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: -1}, "nfds -1 is negative", false},
		{"descriptors on Error", wire.Msg{Kind: wire.KindError, ID: 1, Code: 1, NFiles: 1}, "nfds 1 on Error, want 0 (only Request, Reply and Hello carry descriptors)", false},
		{"code 0 on Error", wire.Msg{Kind: wire.KindError, ID: 1}, "code 0 on Error, want nonzero", false},
		{"a code on Stop", wire.Msg{Kind: wire.KindStop, Code: 1}, "code 1 on Stop, want 0", false},
		{"id 0 on Request", wire.Msg{Kind: wire.KindRequest, Op: "x"}, "id 0 on Request, want nonzero", false},
		{"an id on Welcome", wire.Msg{Kind: wire.KindWelcome, ID: 1}, "id 1 on Welcome, want 0", false},
		{"an empty op on Request", wire.Msg{Kind: wire.KindRequest, ID: 1}, "empty op on Request", false},
		{"a space in the role", wire.Msg{Kind: wire.KindHello, Op: "my worker"}, `op "my worker" on Hello: byte 0x20 at offset 2 is not in [a-z0-9._-]`, false},
		{"an op on Reply", wire.Msg{Kind: wire.KindReply, ID: 1, Op: "x"}, `op "x" on Reply, want empty`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := []byte("prefix")
			b, err := wire.Append(dst, &tt.msg, lim)
			if err == nil {
				t.Fatalf("Append = % x, want error %q", b, tt.want)
			}
			if got, want := err.Error(), "wire: "+tt.want; got != want {
				t.Errorf("error %q, want %q", got, want)
			}
			if !errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLarge) != tt.tooLarge {
				t.Errorf("error %v: Is ErrMalformed %v, Is ErrTooLarge %v, want true, %v",
					err, errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrTooLarge), tt.tooLarge)
			}
			if string(b) != "prefix" {
				t.Errorf("Append changed dst to %q on error", b)
			}
			// The same fields sent by a peer that ignores the rules
			// are refused by Decode.
			if tt.msg.NFiles >= 0 {
				if m, err := wire.Decode(rawMsg(&tt.msg), tt.msg.NFiles, lim); err == nil {
					t.Errorf("Decode accepts what Append refuses: %+v", m)
				}
			}
		})
	}
}

func TestLimits(t *testing.T) {
	tests := []struct {
		lim     wire.Limits
		wantErr string
	}{
		{wire.DefaultLimits, ""},
		{wire.Limits{MaxPayload: 1, MaxFiles: 1}, ""},
		{wire.Limits{MaxPayload: wire.MaxPayloadCap, MaxFiles: wire.MaxFilesCap}, ""},
		{wire.Limits{}, "wire: MaxPayload 0 out of range [1, 16777216]"},
		{wire.Limits{MaxPayload: 1 << 24, MaxFiles: 0}, "wire: MaxFiles 0 out of range [1, 253]"},
		{wire.Limits{MaxPayload: 1<<24 + 1, MaxFiles: 1}, "wire: MaxPayload 16777217 out of range [1, 16777216]"},
		{wire.Limits{MaxPayload: 1, MaxFiles: 254}, "wire: MaxFiles 254 out of range [1, 253]"},
		{wire.Limits{MaxPayload: -1, MaxFiles: 1}, "wire: MaxPayload -1 out of range [1, 16777216]"},
	}
	for _, tt := range tests {
		err := tt.lim.Validate()
		got := ""
		if err != nil {
			got = err.Error()
		}
		if got != tt.wantErr {
			t.Errorf("%+v.Validate() = %q, want %q", tt.lim, got, tt.wantErr)
		}
	}
	if got, want := wire.DefaultLimits.BufferSize(), 16+64+65536+1; got != want {
		t.Errorf("DefaultLimits.BufferSize() = %d, want %d", got, want)
	}
}

// TestLimitsOverCaps checks that Decode holds to the hard caps even when
// given Limits that fail Validate.
func TestLimitsOverCaps(t *testing.T) {
	huge := wire.Limits{MaxPayload: math.MaxInt, MaxFiles: math.MaxInt}
	b := raw(header{version: 1, kind: 3, nfds: 254, id: 1, oplen: 1}, "x", "")
	if _, err := wire.Decode(b, 254, huge); err == nil || err.Error() != "wire: nfds 254 exceeds limit 253" {
		t.Errorf("254 descriptors: err = %v, want nfds over 253", err)
	}
	b = raw(header{version: 1, kind: 4, id: 1, paylen: wire.MaxPayloadCap + 1}, "", "")
	if _, err := wire.Decode(b, 0, huge); err == nil || err.Error() != "wire: paylen 16777217 exceeds limit 16777216" {
		t.Errorf("payload over the cap: err = %v", err)
	}
	m := wire.Msg{Kind: wire.KindReply, ID: 1, Payload: []byte("x")}
	if _, err := wire.Append(nil, &m, wire.Limits{MaxPayload: -5, MaxFiles: -5}); err == nil || err.Error() != "wire: paylen 1 exceeds limit 0" {
		t.Errorf("negative limits: err = %v", err)
	}
}

func TestDecodeAliasesPayload(t *testing.T) {
	buf := make([]byte, 0, 128)
	buf, err := wire.Append(buf, &wire.Msg{Kind: wire.KindReply, ID: 1, Payload: []byte("hello")}, lim)
	if err != nil {
		t.Fatal(err)
	}
	m, err := wire.Decode(buf, 0, lim)
	if err != nil {
		t.Fatal(err)
	}
	if &m.Payload[0] != &buf[wire.HeaderLen] {
		t.Errorf("Payload does not alias the datagram")
	}
	if cap(m.Payload) != len(m.Payload) {
		t.Errorf("cap(Payload) = %d, want %d: appending to it would write into the receive buffer", cap(m.Payload), len(m.Payload))
	}
}

func TestKindString(t *testing.T) {
	want := []string{"Kind(0)", "Hello", "Welcome", "Request", "Reply", "Error", "Stop", "Kind(7)"}
	var got []string
	for k := range wire.Kind(8) {
		got = append(got, k.String())
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Kind.String (-want +got):\n%s", diff)
	}
	if got := wire.Kind(255).String(); got != "Kind(255)" {
		t.Errorf("Kind(255).String() = %q", got)
	}
}

func TestListen(t *testing.T) {
	for _, tt := range []struct{ network, address string }{
		{"tcp", ":443"},
		{"tcp4", "127.0.0.1:80"},
		{"tcp6", "[::1]:8080"},
		{"unix", "/run/app.sock"},
		{"unix", "@abstract"},
		{"unixpacket", strings.Repeat("a", wire.MaxAddrLen)},
	} {
		p := wire.AppendListen(nil, tt.network, tt.address)
		network, address, err := wire.DecodeListen(p)
		if err != nil {
			t.Errorf("DecodeListen(AppendListen(%q, %q)): %v", tt.network, tt.address, err)
			continue
		}
		if network != tt.network || address != tt.address {
			t.Errorf("DecodeListen(AppendListen(%q, %q)) = %q, %q", tt.network, tt.address, network, address)
		}
	}
}

func TestDecodeListenMalformed(t *testing.T) {
	tests := []struct {
		name     string
		p        []byte
		want     string
		tooLarge bool
	}{
		{"an empty payload", nil, "listen payload is empty", false},
		{"a network length past the end", []byte("\x05tcp"), "listen payload: network length 5 exceeds the 3 bytes that follow", false},
		{"an empty network", wire.AppendListen(nil, "", ":80"), `listen payload: network "", want tcp, tcp4, tcp6, unix or unixpacket`, false},
		{"udp", wire.AppendListen(nil, "udp", ":53"), `listen payload: network "udp", want tcp, tcp4, tcp6, unix or unixpacket`, false},
		{"upper case", wire.AppendListen(nil, "TCP", ":80"), `listen payload: network "TCP", want tcp, tcp4, tcp6, unix or unixpacket`, false},
		{"a network prefix", wire.AppendListen(nil, "tc", "p:80"), `listen payload: network "tc", want tcp, tcp4, tcp6, unix or unixpacket`, false},
		{"a network too long for its length byte", wire.AppendListen(nil, "tcp"+strings.Repeat("x", 256), ":80"), `listen payload: network "", want tcp, tcp4, tcp6, unix or unixpacket`, false},
		{"no address", wire.AppendListen(nil, "tcp", ""), "listen payload: empty address", false},
		{"an address over MaxAddrLen", wire.AppendListen(nil, "unix", strings.Repeat("a", wire.MaxAddrLen+1)), "listen payload: address of 257 bytes exceeds limit 256", true},
		{"a NUL in the address", wire.AppendListen(nil, "unix", "/run/x\x00y"), "listen payload: address has a NUL byte at offset 6", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			network, address, err := wire.DecodeListen(tt.p)
			checkPayloadErr(t, err, tt.want, tt.tooLarge)
			if network != "" || address != "" {
				t.Errorf("DecodeListen returned %q, %q with its error", network, address)
			}
		})
	}
}

func checkPayloadErr(t *testing.T, err error, want string, tooLarge bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", want)
	}
	if got, want := err.Error(), "wire: "+want; got != want {
		t.Errorf("error %q, want %q", got, want)
	}
	if !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("errors.Is(%v, ErrMalformed) = false", err)
	}
	if got := errors.Is(err, wire.ErrTooLarge); got != tooLarge {
		t.Errorf("errors.Is(%v, ErrTooLarge) = %v, want %v", err, got, tooLarge)
	}
}

// TestAllocs pins the allocation counts the package documents: none to
// encode into a buffer with room, none to decode a message whose op is
// empty or built in, one (the Op string) for any other op or role, and one
// (the string) for each payload decoder.
func TestAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	buf := make([]byte, 0, 256)
	enc := func(m wire.Msg) []byte {
		b, err := wire.Append(nil, &m, lim)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	openReq := enc(wire.Msg{Kind: wire.KindRequest, ID: 1, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts"})})
	listenReq := enc(wire.Msg{Kind: wire.KindRequest, ID: 1, Op: wire.OpListen, Payload: wire.AppendListen(nil, "tcp", ":443")})
	customReq := enc(wire.Msg{Kind: wire.KindRequest, ID: 1, Op: "status", Payload: []byte("x")})
	hello := enc(wire.Msg{Kind: wire.KindHello, Op: "http"})
	reply := enc(wire.Msg{Kind: wire.KindReply, ID: 1, NFiles: 1, Payload: []byte("ok")})
	openPayload := wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts"})
	listenPayload := wire.AppendListen(nil, "tcp", ":443")

	tests := []struct {
		name string
		want float64
		f    func()
	}{
		{"Append into a buffer with room", 0, func() {
			m := wire.Msg{Kind: wire.KindRequest, ID: 1, Op: "status", Payload: openPayload, NFiles: 2}
			buf, _ = wire.Append(buf[:0], &m, lim)
		}},
		{"Decode a Request for open", 0, func() { wire.Decode(openReq, 0, lim) }},
		{"Decode a Request for listen", 0, func() { wire.Decode(listenReq, 0, lim) }},
		{"Decode a Reply", 0, func() { wire.Decode(reply, 1, lim) }},
		{"Decode a Request for another op", 1, func() { wire.Decode(customReq, 0, lim) }},
		{"Decode a Hello", 1, func() { wire.Decode(hello, 0, lim) }},
		{"DecodeFile", 1, func() { wire.DecodeFile(openPayload) }},
		{"DecodeListen", 1, func() { wire.DecodeListen(listenPayload) }},
	}
	for _, tt := range tests {
		if got := testing.AllocsPerRun(100, tt.f); got != tt.want {
			t.Errorf("%s: %v allocations, want %v", tt.name, got, tt.want)
		}
	}
}

// fuzzLimits are small, so the fuzzer reaches every limit.
var fuzzLimits = wire.Limits{MaxPayload: 512, MaxFiles: 4}

// FuzzDecode checks that Decode never panics, that its errors wrap
// ErrMalformed, that whatever it accepts Append encodes back to the same
// bytes, that Payload lies within the datagram, and that Append accepts
// exactly the well-framed messages that Decode accepts.
func FuzzDecode(f *testing.F) {
	for _, m := range []wire.Msg{
		{Kind: wire.KindHello, Op: "worker"},
		{Kind: wire.KindWelcome},
		{Kind: wire.KindRequest, ID: 1, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/etc/hosts"})},
		{Kind: wire.KindReply, ID: 1, NFiles: 2},
		{Kind: wire.KindError, ID: 1, Code: wire.CodeDenied, Payload: []byte("no")},
		{Kind: wire.KindStop},
	} {
		b, err := wire.Append(nil, &m, fuzzLimits)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, m.NFiles)
	}
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		check(t, b, nfds)
		if len(b) > 2 {
			check(t, b, int(b[2])) // the count the header announces
		}
	})
}

func check(t *testing.T, b []byte, nfds int) {
	m, err := wire.Decode(b, nfds, fuzzLimits)
	if err != nil {
		if !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("Decode error %v does not wrap ErrMalformed", err)
		}
	} else {
		enc, err := wire.Append(nil, &m, fuzzLimits)
		if err != nil {
			t.Fatalf("Append refuses what Decode accepted (%+v): %v", m, err)
		}
		if !bytes.Equal(enc, b) {
			t.Fatalf("re-encoded\n% x\nwant\n% x", enc, b)
		}
		if len(m.Payload) > 0 {
			start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
			p := uintptr(unsafe.Pointer(unsafe.SliceData(m.Payload)))
			if p < start || p+uintptr(cap(m.Payload)) > start+uintptr(len(b)) {
				t.Fatalf("Payload [%#x, +%d) outside the datagram [%#x, +%d)", p, cap(m.Payload), start, len(b))
			}
		}
	}
	// A well-framed datagram (version, flags and lengths right, the
	// announced descriptors arrived): Append accepts its fields exactly
	// when Decode accepts the datagram.
	if len(b) < wire.HeaderLen || b[0] != wire.Version || b[3] != 0 || int(b[2]) != nfds {
		return
	}
	oplen := int(binary.LittleEndian.Uint16(b[8:]))
	paylen := int(binary.LittleEndian.Uint32(b[12:]))
	if wire.HeaderLen+oplen+paylen != len(b) {
		return
	}
	fields := wire.Msg{
		Kind:    wire.Kind(b[1]),
		ID:      binary.LittleEndian.Uint32(b[4:]),
		Code:    binary.LittleEndian.Uint16(b[10:]),
		Op:      string(b[wire.HeaderLen : wire.HeaderLen+oplen]),
		Payload: b[wire.HeaderLen+oplen:],
		NFiles:  nfds,
	}
	if _, aerr := wire.Append(nil, &fields, fuzzLimits); (aerr == nil) != (err == nil) {
		t.Fatalf("Append error %v, Decode error %v", aerr, err)
	}
}

// FuzzDecodeListen checks that DecodeListen never panics and that whatever
// it accepts AppendListen encodes back to the same bytes.
func FuzzDecodeListen(f *testing.F) {
	f.Add(wire.AppendListen(nil, "tcp", ":443"))
	f.Add(wire.AppendListen(nil, "unix", "/run/x.sock"))
	f.Fuzz(func(t *testing.T, p []byte) {
		network, address, err := wire.DecodeListen(p)
		if err != nil {
			if !errors.Is(err, wire.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if enc := wire.AppendListen(nil, network, address); !bytes.Equal(enc, p) {
			t.Fatalf("re-encoded %q, want %q", enc, p)
		}
	})
}

var benchMsg = wire.Msg{Kind: wire.KindRequest, ID: 12345, Op: wire.OpFileOpen, Payload: wire.AppendFile(nil, &wire.FileRequest{Path: "/var/lib/app/state.db", Flag: 0o2000002}), NFiles: 0}

// rawHeader is the baseline: the header fields read with no checks.
type rawHeader struct {
	kind, nfds  uint8
	id          uint32
	oplen, code uint16
	paylen      uint32
}

func BenchmarkDecode(b *testing.B) {
	datagram, err := wire.Append(nil, &benchMsg, lim)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := wire.Decode(datagram, 0, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		var h rawHeader
		for b.Loop() {
			h = rawHeader{
				kind:   datagram[1],
				nfds:   datagram[2],
				id:     binary.LittleEndian.Uint32(datagram[4:]),
				oplen:  binary.LittleEndian.Uint16(datagram[8:]),
				code:   binary.LittleEndian.Uint16(datagram[10:]),
				paylen: binary.LittleEndian.Uint32(datagram[12:]),
			}
		}
		_ = h
	})
}

func BenchmarkAppend(b *testing.B) {
	buf := make([]byte, 0, benchMsg.Len())
	b.Run("wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = wire.Append(buf[:0], &benchMsg, lim); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("raw", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf = append(buf[:0], wire.Version, byte(benchMsg.Kind), 0, 0)
			buf = binary.LittleEndian.AppendUint32(buf, benchMsg.ID)
			buf = binary.LittleEndian.AppendUint16(buf, uint16(len(benchMsg.Op)))
			buf = binary.LittleEndian.AppendUint16(buf, 0)
			buf = binary.LittleEndian.AppendUint32(buf, uint32(len(benchMsg.Payload)))
			buf = append(buf, benchMsg.Op...)
			buf = append(buf, benchMsg.Payload...)
		}
	})
}
