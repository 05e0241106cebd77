package wire

import "strconv"

// Kind is the type of a message, the second byte of the header.
type Kind uint8

// The message kinds. The arrow is the direction each one travels.
const (
	KindHello   Kind = 1 // worker -> parent: first message, op is the role name
	KindWelcome Kind = 2 // parent -> worker: the worker passed verification
	KindRequest Kind = 3 // worker -> parent: call op with the payload
	KindReply   Kind = 4 // parent -> worker: the call with that id succeeded
	KindError   Kind = 5 // parent -> worker: the call with that id failed with code
	KindStop    Kind = 6 // parent -> worker: shut down
)

var kindNames = [...]string{
	KindHello:   "Hello",
	KindWelcome: "Welcome",
	KindRequest: "Request",
	KindReply:   "Reply",
	KindError:   "Error",
	KindStop:    "Stop",
}

func (k Kind) valid() bool { return KindHello <= k && k <= KindStop }

// String returns the name of k, or "Kind(N)" for an unknown kind.
func (k Kind) String() string {
	if k.valid() {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}
