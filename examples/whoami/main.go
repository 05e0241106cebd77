// Command whoami is the smallest useful peercred server: it listens on a Unix
// socket and tells every client who the kernel says it is, and logs the same
// line. Connect with any Unix-socket client, for example
//
//	nc -U /tmp/peercred-whoami.sock
//	sudo -u nobody socat - UNIX-CONNECT:/tmp/peercred-whoami.sock
//
// Flags: -socket PATH (or @name for an abstract socket), -mode (default 0666,
// so that other users can try it). Started by systemd or
// systemd-socket-activate with one listening socket, it serves that socket
// instead, and -socket and -mode do not apply:
//
//	go build -o /tmp/whoami ./examples/whoami
//	systemd-socket-activate -l /tmp/peercred-whoami.sock /tmp/whoami
//
// Exit status: 0 when stopped by SIGINT or SIGTERM, 1 for an error, 2 for a
// usage error.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/peercred/peercred"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run runs the command line args and returns the exit status.
func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("whoami", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("socket", "/tmp/peercred-whoami.sock", "socket `PATH`, or @name for an abstract socket")
	mode := fs.String("mode", "0666", "socket file `MODE` (octal)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "whoami: "+format+"\nRun 'whoami -h' for usage.\n", args...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if *path == "" {
		return usage("-socket is empty: want a socket path, or @name")
	}
	m, err := strconv.ParseUint(*mode, 8, 32)
	if err != nil || m&^0o777 != 0 {
		return usage("-mode %q is not an octal permission such as 0660", *mode)
	}
	lc := peercred.ListenConfig{Mode: os.FileMode(m)}
	if (*path)[0] == '@' {
		lc.Mode = 0 // an abstract socket has no file
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if err := serve(ctx, &lc, *path, log); err != nil {
		fmt.Fprintln(stderr, "whoami:", err)
		return 1
	}
	return 0
}

// serve serves the socket systemd passed, if any, or else listens on path,
// until ctx ends.
func serve(ctx context.Context, lc *peercred.ListenConfig, path string, log *slog.Logger) error {
	l, err := lc.ActivationListener()
	if errors.Is(err, peercred.ErrNotActivated) {
		l, err = lc.Listen(ctx, path)
	} else if err == nil {
		path = l.Addr().String()
		log.Info("serving the socket systemd passed", "socket", path)
	}
	if err != nil {
		return err
	}
	defer l.Close() // removes the socket file it made (not systemd's)
	log.Info("listening; connect with: nc -U "+path, "socket", path, "pid", os.Getpid())
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.AcceptPeerCred()
		if errors.Is(err, net.ErrClosed) {
			log.Info("shutting down")
			return nil
		}
		if err != nil {
			log.Warn("accept", "err", err)
			continue
		}
		cr := c.Cred()
		groups, err := cr.Groups() // read from c: ask before closing it
		if err != nil {
			log.Warn("groups", "err", err)
		}
		log.Info("client", "pid", cr.PID, "uid", cr.UID, "gid", cr.GID, "groups", groups)
		fmt.Fprintf(c, "you are %s (as the kernel reports it)\n", cr)
		c.Close()
	}
}
