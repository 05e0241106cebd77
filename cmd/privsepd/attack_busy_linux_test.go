package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// busy-http ADDR N MODE PAUSE: keep N connections to the HTTP server at
	// ADDR busy: on each, send what MODE says and read until the server
	// closes it, then wait PAUSE and connect again. MODE "post" sends the
	// headers of a POST whose body (200000 bytes, under net/http's 256 KiB
	// drain limit) never comes; "slowhdr" sends part of a request's
	// headers. Print "flooding" once N connections are made, then go on
	// until stdin ends; then print "made M connections".
	testutil.Register("busy-http", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		pause, _ := time.ParseDuration(args[3])
		payload := map[string]string{
			"post":    "POST / HTTP/1.1\r\nHost: privsepd\r\nContent-Length: 200000\r\n\r\n",
			"slowhdr": "GET / HTTP/1.1\r\nHost: privsepd\r\n",
		}[args[2]]
		if payload == "" {
			fmt.Println("error: unknown mode", args[2])
			return 1
		}
		lim := unix.Rlimit{Cur: uint64(n + 100), Max: uint64(n + 100)}
		var cur unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Max > lim.Max {
			lim.Max = cur.Max
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Println("error: setrlimit:", err)
			return 1
		}
		var (
			stop  = make(chan struct{})
			dials atomic.Int64
			mu    sync.Mutex
			open  = map[net.Conn]bool{}
			wg    sync.WaitGroup
		)
		for range n {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					c, err := net.DialTimeout("tcp", args[0], 5*time.Second)
					if err != nil {
						time.Sleep(100 * time.Millisecond)
						continue
					}
					mu.Lock()
					open[c] = true
					mu.Unlock()
					dials.Add(1)
					io.WriteString(c, payload)
					io.Copy(io.Discard, c) // until the server closes it (or stop does)
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					select {
					case <-stop:
						return
					case <-time.After(pause):
					}
				}
			})
		}
		for deadline := time.Now().Add(time.Minute); dials.Load() < int64(n) && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Println("flooding")
		io.Copy(io.Discard, os.Stdin)
		close(stop)
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
		fmt.Println("made", dials.Load(), "connections")
		return 0
	})
}

// TestBusyHTTP: uid 1234 keeps a thousand connections to the web worker
// "in progress", more than its connection cap (below its descriptor limit,
// 1024), and opens a new one for each the server closes. Meanwhile fresh
// requests from another user are each answered within 2s.
//
// "post": a POST whose body never comes. Once the handler answered, Go's
// http.Server would read the body to reuse the connection, until
// ReadTimeout (10s), with the connection busy; the worker answers such a
// request and closes the connection instead.
//
// "slowhdr": headers that never end, until ReadHeaderTimeout (5s). net/http
// counts such a connection as new, not busy, until its headers are read:
// the cap closes it to make room.
//
// (TestConnLimit checks that at the cap with every connection busy, the one
// busy longest makes room.)
func TestBusyHTTP(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "privsepd")
	for _, tt := range []struct{ mode, pause string }{
		{"post", "1s"}, // busyflood's pace
		{"slowhdr", "10ms"},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			addr := freePrivilegedPort(t)
			d := startDaemon(t, bin, nil, addr)
			pid, _ := d.status(t, nil)

			stdin, hold := io.Pipe()
			t.Cleanup(func() { hold.Close() })
			flood := testutil.Start(t, "busy-http", testutil.Options{
				As:   &testutil.User{UID: 1234, GID: 1234},
				Args: []string{addr, "1100", tt.mode, tt.pause}, Stdin: stdin, Timeout: 3 * time.Minute,
			})
			if line := flood.Line(t); line != "flooding" {
				t.Fatalf("uid 1234: %s", line)
			}
			time.Sleep(2 * time.Second) // the server answers, the flood comes back

			served := 0
			for i := range 10 {
				c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					t.Logf("request %d: %v", i, err)
					continue
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "privsepd: hello") {
					t.Logf("request %d: %s, %v:\n%s", i, resp.Status, err, b)
					continue
				}
				served++
			}
			hold.Close()
			t.Logf("uid 1234: %s", flood.Line(t))
			if served != 10 {
				t.Errorf("%d of 10 requests served within 2s while uid 1234 keeps connections busy (%s)", served, tt.mode)
			}
			if err := d.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			d.stopped(t, pid)
		})
	}
}
