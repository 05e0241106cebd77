package main

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
)

// TestConnLimit: at the cap, a new connection closes the idle one that
// waited longest; when every connection is busy, the new one is closed.
func TestConnLimit(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var logBuf testutil.Buffer
	cl := newConnLimit(l, 2, slog.New(slog.NewTextHandler(&logBuf, nil)))
	release := make(chan struct{})
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				<-release
			}
			io.WriteString(w, "ok")
		}),
		ConnState: cl.ConnState,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(cl) }()
	t.Cleanup(func() {
		srv.Close()
		<-served
	})
	addr := l.Addr().String()

	// send connects and sends a request for path.
	send := func(path string) (net.Conn, *bufio.Reader) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		return c, bufio.NewReader(c)
	}
	// answered reads the response to a request sent with send.
	answered := func(what string, r *bufio.Reader) {
		t.Helper()
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		resp.Body.Close()
	}
	// closed checks that the server has closed c.
	closed := func(what string, r *bufio.Reader) {
		t.Helper()
		if b, err := r.ReadByte(); err == nil {
			t.Errorf("%s: read %q, want it closed", what, b)
		}
	}

	t.Run("the idle connection that waited longest makes room", func(t *testing.T) {
		ac, a := send("/")
		answered("a", a)
		time.Sleep(10 * time.Millisecond) // a has been idle longer than b
		bc, b := send("/")
		answered("b", b)
		waitIdle(t, cl, 2)
		cc, c := send("/")
		answered("a third connection", c)
		closed("the first idle connection", a)
		if openConns(cl) != 2 {
			t.Errorf("%d connections open, want 2", openConns(cl))
		}
		for _, c := range []net.Conn{ac, bc, cc} {
			c.Close()
		}
	})
	t.Run("the connection busy longest makes room when all are busy", func(t *testing.T) {
		testutil.WaitFor(t, "the idle connections to close", 10*time.Second, func() bool { return openConns(cl) == 0 })
		_, a := send("/block")
		testutil.WaitFor(t, "a busy", 10*time.Second, func() bool { return activeConns(cl) == 1 })
		time.Sleep(10 * time.Millisecond) // a has been busy longer than b
		_, b := send("/block")
		testutil.WaitFor(t, "two busy connections", 10*time.Second, func() bool { return activeConns(cl) == 2 })
		_, c := send("/")
		answered("a connection beyond the cap", c)
		closed("the connection busy longest", a)
		close(release)
		answered("busy b", b)
	})
	if log := logBuf.String(); !strings.Contains(log, "connection cap reached") {
		t.Errorf("no line about the cap in the log:\n%s", log)
	}
}

func openConns(cl *connLimit) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return len(cl.conns)
}

func activeConns(cl *connLimit) int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	n := 0
	for _, e := range cl.conns {
		if e.state == http.StateActive {
			n++
		}
	}
	return n
}

// waitIdle waits for n connections of cl to be idle.
func waitIdle(t *testing.T, cl *connLimit, n int) {
	t.Helper()
	testutil.WaitFor(t, "idle connections", 10*time.Second, func() bool {
		cl.mu.Lock()
		defer cl.mu.Unlock()
		idle := 0
		for _, e := range cl.conns {
			if e.state == http.StateIdle {
				idle++
			}
		}
		return idle == n
	})
}
