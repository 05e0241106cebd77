package wire

import "bytes"

// OpListen is the built-in operation that asks the parent to create a
// listening socket and send back its descriptor. Its payload is built by
// AppendListen.
const OpListen = "listen"

// MaxAddrLen is the longest address a listen payload carries.
const MaxAddrLen = 256

// AppendListen appends the payload of an OpListen request to dst: one byte
// of network length, the network, then the address. AppendListen does not
// check its arguments: a network other than tcp, tcp4, tcp6, unix or
// unixpacket, or an address that is empty, longer than MaxAddrLen or holds
// a NUL byte makes a payload that DecodeListen rejects.
func AppendListen(dst []byte, network, address string) []byte {
	if len(network) > 0xff {
		// Any valid network is shorter; an empty one is refused.
		network = ""
	}
	dst = append(dst, byte(len(network)))
	dst = append(dst, network...)
	return append(dst, address...)
}

// DecodeListen parses the payload of an OpListen request. The network must
// be one of tcp, tcp4, tcp6, unix and unixpacket, the address non-empty, at
// most MaxAddrLen bytes and free of NUL bytes. Its errors wrap ErrMalformed
// (and ErrTooLarge for an address over the limit); a parent answers them
// with CodeBadRequest.
func DecodeListen(p []byte) (network, address string, err error) {
	if len(p) == 0 {
		return "", "", malformed("listen payload is empty")
	}
	n := int(p[0])
	if n > len(p)-1 {
		return "", "", malformed("listen payload: network length %d exceeds the %d bytes that follow", n, len(p)-1)
	}
	switch string(p[1 : 1+n]) {
	case "tcp":
		network = "tcp"
	case "tcp4":
		network = "tcp4"
	case "tcp6":
		network = "tcp6"
	case "unix":
		network = "unix"
	case "unixpacket":
		network = "unixpacket"
	default:
		return "", "", malformed("listen payload: network %q, want tcp, tcp4, tcp6, unix or unixpacket", p[1:1+n])
	}
	b := p[1+n:]
	if len(b) == 0 {
		return "", "", malformed("listen payload: empty address")
	}
	if len(b) > MaxAddrLen {
		return "", "", tooLarge("listen payload: address of %d bytes exceeds limit %d", len(b), MaxAddrLen)
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return "", "", malformed("listen payload: address has a NUL byte at offset %d", i)
	}
	return network, string(b), nil
}
