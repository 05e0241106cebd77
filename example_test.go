package peercred_test

import (
	"context"
	"fmt"
	"log"
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
