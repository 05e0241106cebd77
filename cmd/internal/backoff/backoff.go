// Package backoff paces a server's accept loop after errors that concern
// the moment rather than the listener, such as running out of descriptors
// (EMFILE): retrying at once would only spin.
package backoff

import (
	"context"
	"errors"
	"net"
	"time"
)

// Accept decides what an accept loop does with err from Accept. For a
// temporary error (net.Error with Temporary true) it waits, 5ms after the
// first and doubling up to a second after repeated ones, and returns true:
// accept again. Otherwise it returns false. Reset the delay to 0 after a
// successful accept.
func Accept(ctx context.Context, err error, delay *time.Duration) bool {
	var ne net.Error
	//lint:ignore SA1019 accept loops go by Temporary, as net/http's Server does: peercred.Listener documents a peer whose credentials it could not read as temporary, and nothing else tells that from a broken listener.
	if !errors.As(err, &ne) || !ne.Temporary() {
		return false
	}
	*delay = min(max(2**delay, 5*time.Millisecond), time.Second)
	t := time.NewTimer(*delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return true
}
