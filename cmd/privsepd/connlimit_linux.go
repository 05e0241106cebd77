package main

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/peercred/peercred/internal/ratelog"
	"golang.org/x/sys/unix"
)

// connLimit is the web worker's listener: it keeps the connections open at
// once to at most max, below the worker's descriptor limit, so that a user
// who opens a thousand connections and leaves them idle cannot make the
// worker run out of descriptors and stop accepting. A connection accepted at
// the cap makes room by closing the one that has waited longest for a
// request (idle between keep-alive requests, or new and silent); if every
// connection is busy with a request, it closes the one busy longest, so
// that connections kept busy cannot hold the worker: a new client always
// gets its chance. What keeps a connection busy is bounded besides: the
// page is answered at once, a request body (never read, see refuseBody)
// closes the connection, and a client that does not read its answer meets
// WriteTimeout. TCP says nothing of the local user behind a connection, so
// the cap cannot be per user: an attacker can take others' connections
// away, at the cap, never their chance to be answered.
//
// Its ConnState method must be the http.Server's ConnState hook.
type connLimit struct {
	net.Listener
	max int
	log *slog.Logger
	lim ratelog.Limiter[string] // the lines about the cap, per message

	mu    sync.Mutex
	conns map[net.Conn]connEntry // open, as Accept returned them
}

type connEntry struct {
	state http.ConnState
	since time.Time // of the state
}

// newConnLimit wraps l, which it takes over, with a cap of max open
// connections.
func newConnLimit(l net.Listener, max int, log *slog.Logger) *connLimit {
	cl := &connLimit{Listener: l, max: max, log: log, conns: make(map[net.Conn]connEntry)}
	cl.lim.Summary = func(msg string, dropped uint64) {
		log.Warn("http: lines not logged", "about", msg, "dropped", dropped, "interval", ratelog.DefaultInterval)
	}
	return cl
}

// Accept returns the next connection, after making room for it.
func (cl *connLimit) Accept() (net.Conn, error) {
	c, err := cl.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if victim, busy := cl.admit(c); victim != nil {
		victim.Close()
		if busy {
			cl.warn("http: connection cap reached and every connection busy; closed the one busy longest", "max", cl.max)
		} else {
			cl.warn("http: connection cap reached; closed the connection waiting longest", "max", cl.max)
		}
	}
	return c, nil
}

// admit makes room for c and counts it, and returns the connection to
// close for it, if any: the one that has waited longest for a request, or
// else the one busy longest (busy true).
func (cl *connLimit) admit(c net.Conn) (victim net.Conn, busy bool) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.conns) >= cl.max {
		var idle, active net.Conn
		var idleSince, activeSince time.Time
		for vc, e := range cl.conns {
			if e.state == http.StateIdle || e.state == http.StateNew {
				if idle == nil || e.since.Before(idleSince) {
					idle, idleSince = vc, e.since
				}
			} else if active == nil || e.since.Before(activeSince) {
				active, activeSince = vc, e.since
			}
		}
		victim, busy = idle, false
		if victim == nil {
			victim, busy = active, true
		}
		delete(cl.conns, victim)
	}
	cl.conns[c] = connEntry{http.StateNew, time.Now()}
	return victim, busy
}

// ConnState follows the state of each connection (http.Server.ConnState).
func (cl *connLimit) ConnState(c net.Conn, state http.ConnState) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(cl.conns, c)
	default:
		if _, ok := cl.conns[c]; ok {
			cl.conns[c] = connEntry{state, time.Now()}
		}
	}
}

// Close closes the listener and reports the lines not logged.
func (cl *connLimit) Close() error {
	err := cl.Listener.Close()
	cl.lim.Close()
	return err
}

func (cl *connLimit) warn(msg string, args ...any) {
	if cl.lim.Allow(msg) {
		cl.log.Warn(msg, args...)
	}
}

// maxConns is the cap on the worker's connections: its descriptor limit
// (RLIMIT_NOFILE) less what it needs besides, at most 4096.
func maxConns() int {
	const reserve, most = 64, 4096
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= most+reserve {
		return most
	}
	return max(int(lim.Cur)-reserve, 16)
}
