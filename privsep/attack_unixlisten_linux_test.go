package privsep_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
)

// Attack (red team, issue 15): a root parent handed a worker a Unix socket
// it had listened on itself. The kernel records a Unix server's
// credentials at listen(2), so every client saw the worker, whatever its
// UID, as root: peercred.SameUserOrRoot, the default of DialFunc,
// privsep.Dialer and grpcpeer, admitted it, and a compromised worker could
// pass that socket to any process to make it "root" to its clients.

func init() {
	// serve-unix listens through its parent on network args[0], address
	// args[1], and answers each connection with who it is.
	privsep.Register("serve-unix", func(ctx context.Context, w *privsep.Worker) error {
		l, err := w.Listen(ctx, w.Args()[0], w.Args()[1])
		if err != nil {
			fmt.Println("listen:", err)
			return nil
		}
		defer l.Close()
		go func() { <-ctx.Done(); l.Close() }()
		fmt.Println("listening")
		for {
			c, err := l.Accept()
			if err != nil {
				return nil
			}
			fmt.Fprintf(c, "worker pid %d uid %d\n", os.Getpid(), os.Getuid())
			c.Close()
		}
	})
}

// TestAttackUnixListenerCarriesWorker: the server of a Unix socket a
// worker got from Worker.Listen is, to its clients, the worker (its PID
// and UID), never the parent. A client of another UID, with the default
// Authorizer, refuses it.
func TestAttackUnixListenerCarriesWorker(t *testing.T) {
	requireRoot(t, "the worker runs as another user than its root parent")
	dir := t.TempDir()
	for _, tt := range []struct{ network, address string }{
		{"unix", fmt.Sprintf("@peercred-unixlisten-%d-%d", os.Getpid(), time.Now().UnixNano())},
		{"unix", filepath.Join(dir, "s")},
		{"unixpacket", fmt.Sprintf("@peercred-unixlisten-p-%d-%d", os.Getpid(), time.Now().UnixNano())},
	} {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
				"serve-unix": {Listen: []privsep.ListenRule{{Network: tt.network, Address: tt.address, Once: true}}},
			}})
			p, out := spawn(t, s, privsep.Spec{Role: "serve-unix", UID: 1234, GID: 1234, Args: []string{tt.network, tt.address}})
			waitLine(t, out, "listening")
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				p.Stop(ctx)
			})

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := peercred.DialNetwork(ctx, tt.network, tt.address)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			got := c.Cred()
			if got.UID != 1234 || got.PID != p.PID() {
				t.Errorf("the server of the worker's socket is pid %d uid %d, want the worker: pid %d uid 1234", got.PID, got.UID, p.PID())
			}
			if tt.network == "unix" {
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					t.Fatalf("read: %v", err)
				}
				if want := fmt.Sprintf("worker pid %d uid 1234\n", p.PID()); line != want {
					t.Errorf("served %q, want %q", line, want)
				}

				// A root client with DialFunc's default refuses the worker.
				hc := http.Client{Transport: &http.Transport{DialContext: peercred.DialFunc(tt.address, nil)}}
				_, err = hc.Get("http://worker/")
				if err == nil || !errors.Is(err, peercred.ErrUnauthorized) {
					t.Errorf("DialFunc with the default Authorizer reached the uid 1234 worker: %v", err)
				} else if !strings.Contains(err.Error(), "uid 1234") {
					t.Errorf("DialFunc's refusal does not name uid 1234: %v", err)
				}
			}
		})
	}
}

// TestConfinedWorkerListensOnUnix: a confined worker listens itself on the
// Unix socket its parent bound, with or without the unix promise; with
// inet its filter refuses listen(2), and Worker.Listen says why.
func TestConfinedWorkerListensOnUnix(t *testing.T) {
	for _, tt := range []struct {
		name     string
		promises []confine.Promise
		want     string
	}{
		{"no promises", nil, "listening"},
		{"unix", []confine.Promise{confine.PromiseUnix}, "listening"},
		{"inet", []confine.Promise{confine.PromiseInet}, `listen: privsep: listen unix @`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := fmt.Sprintf("@peercred-unixlisten-c-%d-%d", os.Getpid(), time.Now().UnixNano())
			s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
				"serve-unix": {Listen: []privsep.ListenRule{{Network: "unix", Address: addr}}},
			}})
			p, out := spawn(t, s, confinedSpec("serve-unix", &confine.Config{Promises: tt.promises}, "unix", addr))
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				p.Stop(ctx)
			})
			line := waitAnyLine(t, out)
			if !strings.HasPrefix(line, tt.want) {
				t.Fatalf("worker: %q, want %q...", line, tt.want)
			}
			if tt.want != "listening" {
				if !strings.Contains(line, `"inet" promise may not listen`) {
					t.Errorf("worker: %q, want it to say the inet promise forbids listen", line)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			c, err := peercred.DialNetwork(ctx, "unix", addr)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if got := c.Cred(); got.PID != p.PID() || got.UID != wUID {
				t.Errorf("server is pid %d uid %d, want the worker: pid %d uid %d", got.PID, got.UID, p.PID(), wUID)
			}
		})
	}
}

// waitAnyLine waits for the worker's first line and returns it.
func waitAnyLine(t *testing.T, out *syncBuffer) string {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a busy machine's, under -race
	for time.Now().Before(deadline) {
		if s, _, ok := strings.Cut(out.String(), "\n"); ok {
			return s
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no line from the worker: %q", out.String())
	return ""
}
