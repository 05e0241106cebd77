package wire

import "fmt"

// Hard caps on Limits, whatever the configuration.
const (
	// MaxFilesCap is the kernel's limit of descriptors in one SCM_RIGHTS
	// message (SCM_MAX_FD on Linux).
	MaxFilesCap = 253

	// MaxPayloadCap is the largest payload any Limits allows. A datagram
	// this large also needs a socket send buffer (SO_SNDBUF) to match: the
	// kernel refuses a datagram larger than the buffer with EMSGSIZE.
	MaxPayloadCap = 16 << 20
)

// Limits bounds what a message may carry. Both ends of a connection should
// use the same Limits: Append refuses to send what the peer's Decode would
// refuse only if they agree.
type Limits struct {
	MaxPayload int // bytes of payload, 1 to MaxPayloadCap
	MaxFiles   int // descriptors per message, 1 to MaxFilesCap
}

// DefaultLimits are the limits privsep uses unless told otherwise. A
// datagram of this size fits the default Linux socket buffers.
var DefaultLimits = Limits{MaxPayload: 64 << 10, MaxFiles: 16}

// Validate reports whether both limits are positive and within the hard
// caps.
func (l Limits) Validate() error {
	if l.MaxPayload < 1 || l.MaxPayload > MaxPayloadCap {
		return fmt.Errorf("wire: MaxPayload %d out of range [1, %d]", l.MaxPayload, MaxPayloadCap)
	}
	if l.MaxFiles < 1 || l.MaxFiles > MaxFilesCap {
		return fmt.Errorf("wire: MaxFiles %d out of range [1, %d]", l.MaxFiles, MaxFilesCap)
	}
	return nil
}

// BufferSize returns the size of a receive buffer one byte larger than the
// largest valid message (HeaderLen + MaxOpLen + MaxPayload + 1), so that a
// datagram over the limit is seen as such (MSG_TRUNC, or a full buffer)
// rather than cut to a size that might look valid.
func (l Limits) BufferSize() int { return l.maxLen() + 1 }

// maxLen returns the length of the largest valid message.
func (l Limits) maxLen() int { return HeaderLen + MaxOpLen + l.maxPayload() }

// maxPayload returns MaxPayload clamped to [0, MaxPayloadCap].
func (l Limits) maxPayload() int { return max(0, min(l.MaxPayload, MaxPayloadCap)) }

// maxFiles returns MaxFiles clamped to [0, MaxFilesCap].
func (l Limits) maxFiles() int { return max(0, min(l.MaxFiles, MaxFilesCap)) }
