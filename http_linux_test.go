package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// httpserve ADDR ADMITUID: serve credHandler(AllowUIDs(ADMITUID)) over
	// HTTP on a peercred listener at ADDR (mode 0666), say "ready", and
	// print "PATH uid=UID" for every request.
	testutil.Register("httpserve", func(args []string) int {
		admit, _ := strconv.Atoi(args[1])
		l, err := (&peercred.ListenConfig{Mode: 0o666}).Listen(context.Background(), args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		h := credHandler(peercred.AllowUIDs(uint32(admit)))
		srv := &http.Server{
			ConnContext: peercred.ConnContext,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, _ := peercred.FromContext(r.Context())
				fmt.Printf("%s uid=%d\n", r.URL.Path, c.UID)
				h.ServeHTTP(w, r)
			}),
		}
		fmt.Println("ready")
		srv.Serve(l)
		return 1
	})
	// httpget ADDR SERVERUID: GET http://app/ over the socket ADDR with a
	// client that admits only a server run by SERVERUID, and print "STATUS
	// BODY", or "refused: ERROR" when it refused the server.
	testutil.Register("httpget", func(args []string) int {
		uid, _ := strconv.Atoi(args[1])
		status, body, err := httpGet(args[0], peercred.AllowUIDs(uint32(uid)), "/")
		switch {
		case errors.Is(err, peercred.ErrUnauthorized):
			fmt.Println("refused:", err)
		case err != nil:
			fmt.Println("error:", err)
			return 1
		default:
			fmt.Println(status, body)
		}
		return 0
	})
}

// credHandler greets callers admit admits with their pid and uid, and
// answers others 403 Forbidden with the reason.
func credHandler(admit peercred.Authorizer) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := peercred.FromContext(r.Context())
		if !ok {
			http.Error(w, "unknown caller", http.StatusUnauthorized)
			return
		}
		if err := admit(c); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintf(w, "hello pid=%d uid=%d", c.PID, c.UID)
	})
}

// httpGet GETs path from the HTTP server on the Unix socket addr, admitting
// only a server that authorize admits.
func httpGet(addr string, authorize peercred.Authorizer, path string) (status int, body string, err error) {
	tr := &http.Transport{DialContext: peercred.DialFunc(addr, authorize)}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	resp, err := client.Get("http://app" + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// A client checks who serves the socket: the server runs as uid 1234, so a
// client that expects 1234 gets its answer and one that expects root
// refuses it before sending a request.
func TestHTTPClientChecksServer(t *testing.T) {
	testutil.RequireRoot(t)
	addr := filepath.Join(testutil.SocketDir(t), "http.sock")
	srv := testutil.Start(t, "httpserve", testutil.Options{Args: []string{addr, "0"}, As: other})
	if line := srv.Line(t); line != "ready" {
		t.Fatalf("server: %s", line)
	}

	_, _, err := httpGet(addr, peercred.AllowUIDs(0), "/refused")
	if !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("client expecting a root server: error %v, want ErrUnauthorized", err)
	} else if !strings.Contains(err.Error(), "uid 1234 is not in the allowed list [0]") {
		t.Errorf("refusal %q does not name the server's uid", err)
	}

	status, body, err := httpGet(addr, peercred.AllowUIDs(1234), "/admitted")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("hello pid=%d uid=0", os.Getpid()); status != http.StatusOK || body != want {
		t.Errorf("client expecting uid 1234: %d %q, want 200 %q", status, body, want)
	}
	// The refused client sent nothing: the first request the server saw
	// is the admitted one.
	if line := srv.Line(t); line != "/admitted uid=0" {
		t.Errorf("server's first request: %q, want \"/admitted uid=0\"", line)
	}
}

// Handlers authorize by the caller's Cred: of two clients under other
// UIDs, the one the policy admits is greeted with its own pid and uid, the
// other gets 403 with the reason. Both check that root serves the socket.
func TestHTTPHandlersAuthorizeByCred(t *testing.T) {
	testutil.RequireRoot(t)
	l := listen(t, &peercred.ListenConfig{Mode: 0o666})
	srv := &http.Server{ConnContext: peercred.ConnContext, Handler: credHandler(peercred.AllowUIDs(1234))}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	admitted := testutil.Start(t, "httpget", testutil.Options{Args: []string{l.Addr().String(), "0"}, As: other})
	refused := testutil.Start(t, "httpget", testutil.Options{Args: []string{l.Addr().String(), "0"},
		As: &testutil.User{UID: 1235, GID: 2346}})
	got := []string{admitted.Line(t), refused.Line(t)}
	want := []string{
		fmt.Sprintf("200 hello pid=%d uid=1234", admitted.PID()),
		"403 uid 1235 is not in the allowed list [1234]: unauthorized",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("clients (-want +got):\n%s", diff)
	}
	for _, p := range []*testutil.Proc{admitted, refused} {
		if err := p.Wait(); err != nil {
			t.Error(err)
		}
	}
}

// DialFunc with a nil Authorizer admits a server of our own UID (see
// TestNilAuthorizerMeansSameUserOrRoot for the others), and its conns are
// *Conn with the server's credentials.
func TestDialFunc(t *testing.T) {
	l := listen(t, &peercred.ListenConfig{})
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
	}()
	c, err := peercred.DialFunc(l.Addr().String(), nil)(context.Background(), "tcp", "ignored:80")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, ok := c.(*peercred.Conn)
	if !ok {
		t.Fatalf("DialFunc returned a %T, want *peercred.Conn", c)
	}
	if pc.Cred().PID != os.Getpid() {
		t.Errorf("server cred %v, want our pid %d", pc.Cred(), os.Getpid())
	}
	if _, err := peercred.DialFunc(filepath.Join(t.TempDir(), "none"), nil)(context.Background(), "tcp", "x:80"); err == nil {
		t.Error("DialFunc to a missing socket succeeded")
	}
}
