// Command whoami is the smallest useful peercred server: it listens on a Unix
// socket and tells every client who the kernel says it is, and logs the same
// line. Connect with any Unix-socket client, for example
//
//	nc -U /tmp/peercred-whoami.sock
//	sudo -u nobody socat - UNIX-CONNECT:/tmp/peercred-whoami.sock
//
// Flags: -socket PATH (or @name for an abstract socket), -mode (default 0666,
// so that other users can try it).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/peercred/peercred"
)

func main() {
	path := flag.String("socket", "/tmp/peercred-whoami.sock", "socket path, or @name for an abstract socket")
	mode := flag.String("mode", "0666", "socket file mode (octal)")
	flag.Parse()
	if err := run(*path, *mode); err != nil {
		fmt.Fprintln(os.Stderr, "whoami:", err)
		os.Exit(1)
	}
}

func run(path, modeStr string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	mode, err := strconv.ParseUint(modeStr, 8, 32)
	if err != nil {
		return fmt.Errorf("bad -mode %q: %v", modeStr, err)
	}
	lc := peercred.ListenConfig{Mode: os.FileMode(mode)}
	if path[0] == '@' {
		lc.Mode = 0
	}
	l, err := lc.Listen(ctx, path)
	if err != nil {
		return err
	}
	defer l.Close()
	slog.Info("listening; connect with: nc -U "+path, "socket", path, "pid", os.Getpid())
	go func() { <-ctx.Done(); l.Close() }()
	for {
		c, err := l.AcceptPeerCred()
		if errors.Is(err, net.ErrClosed) {
			slog.Info("shutting down")
			return nil
		}
		if err != nil {
			slog.Warn("accept", "err", err)
			continue
		}
		cr := c.Cred()
		slog.Info("client", "pid", cr.PID, "uid", cr.UID, "gid", cr.GID, "groups", cr.Groups)
		fmt.Fprintf(c, "you are %s (as the kernel reports it)\n", cr)
		c.Close()
	}
}
