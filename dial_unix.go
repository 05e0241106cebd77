//go:build unix && !solaris && !aix

package peercred

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"syscall"
)

// explainDial adds to err, the error of dialing the socket path addr, what
// is at addr when that is the cause: connect(2) answers ECONNREFUSED alike
// for a socket nobody listens on and for a directory or a regular file
// (and for an abstract name nobody listens on, which reads as a refusal).
// The explanation comes from a stat(2) after the fact, for the message
// only: the error still wraps connect's, and nothing is decided on it.
func explainDial(addr string, err error) error {
	var oe *net.OpError
	if !errors.As(err, &oe) || !(errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTSOCK)) {
		return err
	}
	var why string
	if strings.HasPrefix(addr, "@") {
		why = "no process listens on the abstract socket " + addr
	} else {
		fi, serr := os.Stat(addr)
		if serr != nil {
			return err
		}
		why = fmt.Sprintf("%s is %s, not a socket", addr, fileType(fi.Mode()))
		if fi.Mode().Type() == fs.ModeSocket {
			why = "no process listens on the socket " + addr
		}
	}
	e := *oe
	e.Err = fmt.Errorf("peercred: %s: %w", why, oe.Err)
	return &e
}
