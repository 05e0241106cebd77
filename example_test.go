package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"syscall"

	"github.com/peercred/peercred"
)

// A server that admits only its own user and greets each client by UID.
func ExampleListenConfig_Listen() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")

	lc := peercred.ListenConfig{Mode: 0600, Authorize: peercred.SameUser()}
	l, err := lc.Listen(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	go func() {
		c, err := l.AcceptPeerCred()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "hello, uid %d\n", c.Cred().UID)
	}()

	c, err := peercred.Dial(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var uid int
	fmt.Fscanf(c, "hello, uid %d\n", &uid)
	fmt.Println("server greeted our uid:", uid == os.Getuid())
	fmt.Println("server is our user:", c.Cred().UID == uint32(os.Geteuid()))
	// Output:
	// server greeted our uid: true
	// server is our user: true
}

// Get works on any Unix-domain connection, such as one from net.Dial.
func ExampleGet() {
	a, f, err := peercred.Socketpair(syscall.SOCK_STREAM)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer f.Close()
	cred, err := peercred.Get(a)
	if err != nil {
		log.Fatal(err)
	}
	// A socket pair reports the process that created it, on both ends.
	fmt.Println(cred.PID == os.Getpid())
	// Output: true
}

// Pass an open file to the other end of a socket pair. In real use the
// remote end goes to a child process through exec.Cmd.ExtraFiles.
func ExampleSocketpair() {
	local, remote, err := peercred.Socketpair(syscall.SOCK_SEQPACKET)
	if err != nil {
		log.Fatal(err)
	}
	defer local.Close()
	peer, err := peercred.FileConn(remote) // what the child would do with fd 3
	remote.Close()
	if err != nil {
		log.Fatal(err)
	}
	defer peer.Close()

	f, err := os.CreateTemp("", "example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	f.WriteString("a capability")

	if _, err := local.WriteWithFiles([]byte("here"), f); err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 16)
	n, files, err := peer.ReadWithFiles(buf)
	if err != nil {
		log.Fatal(err)
	}
	got := make([]byte, 32)
	m, _ := files[0].ReadAt(got, 0)
	files[0].Close()
	fmt.Printf("%s: %s\n", buf[:n], got[:m])
	// Output: here: a capability
}

// Compose a policy: root, or members of group 27, but never UID 65534.
func ExampleAnyOf() {
	policy := peercred.AllOf(
		peercred.AnyOf(peercred.AllowUIDs(0), peercred.AllowGIDs(27)),
		func(c *peercred.Cred) error {
			if c.UID == 65534 {
				return fmt.Errorf("unmapped user: %w", peercred.ErrUnauthorized)
			}
			return nil
		},
	)
	lc := peercred.ListenConfig{Mode: 0660, Authorize: policy}
	_ = lc // lc.Listen(ctx, "/run/app.sock")
}

// A client checks who serves a socket before it sends anything: here, that
// the server runs as our own user.
func ExampleDial() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "app.sock")
	l, err := peercred.Listen(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()

	c, err := peercred.Dial(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := peercred.SameUser()(c.Cred()); err != nil {
		log.Fatalf("not talking to %s: %v", path, err)
	}
	fmt.Println("served by our user, pid", c.Cred().PID == os.Getpid())
	// Output: served by our user, pid true
}

// A server started by systemd for its socket unit takes the socket it was
// given, and listens on its own when it was started by hand. (Under go
// test nothing is passed, so it listens itself.)
func ExampleListenConfig_ActivationListener() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	lc := peercred.ListenConfig{Authorize: peercred.SameUser()}
	l, err := lc.ActivationListener()
	if errors.Is(err, peercred.ErrNotActivated) {
		fmt.Println("not socket-activated: listening ourselves")
		l, err = lc.Listen(context.Background(), filepath.Join(dir, "app.sock"))
	}
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	// Output: not socket-activated: listening ourselves
}

// With several sockets (in the unit, FileDescriptorName=api in one .socket
// unit and FileDescriptorName=admin in another), take each by name.
func ExampleListenConfig_ActivationListeners() {
	var lc peercred.ListenConfig
	ls, err := lc.ActivationListeners()
	if err != nil {
		log.Print(err)
		return
	}
	for name, listeners := range ls {
		for _, l := range listeners {
			fmt.Println(name, l.Addr())
		}
	}
}

// An HTTP server on a peercred Listener whose handlers authorize by the
// caller's credentials, and a client that admits only a server run by our
// own user.
func ExampleDialFunc() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "http.sock")

	l, err := (&peercred.ListenConfig{Mode: 0o600}).Listen(context.Background(), path)
	if err != nil {
		log.Fatal(err)
	}
	admit := peercred.SameUser()
	srv := &http.Server{
		ConnContext: peercred.ConnContext, // handlers see the caller's Cred
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			cred, ok := peercred.FromContext(r.Context())
			if !ok {
				http.Error(w, "unknown caller", http.StatusUnauthorized)
				return
			}
			if err := admit(cred); err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			fmt.Fprintln(w, "hello, same user")
		}),
	}
	go srv.Serve(l)
	defer srv.Close()

	client := &http.Client{Transport: &http.Transport{
		DialContext: peercred.DialFunc(path, peercred.SameUser()),
	}}
	resp, err := client.Get("http://app/") // the host is not used to dial
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Print(resp.Status, ": ", string(body))
	// Output: 200 OK: hello, same user
}
