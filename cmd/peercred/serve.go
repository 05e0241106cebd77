package main

import (
	"context"
	"flag"
	"github.com/peercred/peercred/cmd/internal/backoff"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/peercred/peercred"
)

func serveCommand(stdout io.Writer, log *slog.Logger) *command {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var lf listenFlags
	lf.define(fs)
	asJSON := fs.Bool("json", false, "print one JSON object per client, with the fields time, pid, uid, user,\ngid, groups, exe, start_time, unit, user_unit, cgroup, systemd_cgroup,\nsha256 and attest_error (those that are known)")
	hash := fs.Bool("sha256", false, "also print the SHA-256 of each client's executable, read through\n/proc/PID/exe (at most 256 MiB: a larger one is an attest error); a client\nwhose executable is on a file system it serves itself (FUSE) can make serve\nwait for it, and every client with it")
	return &command{
		name: "serve", args: "SOCKET", fs: fs, server: true,
		about: `Listen on SOCKET and print one line per client, as the kernel reports it:
  2026-11-23T13:20:01Z pid=4121 uid=1000(alice) gid=1000 groups=1000,27 exe=/usr/bin/nc
    start=81234 unit=foo.service cgroup=/system.slice/foo.service
(one line). The client is sent the same line (as text, with -json too), and
the connection closed. The user name is omitted when the user database has
none, groups read "-" when there are no supplementary groups and "?" where the
OS does not report them.
The rest is what the kernel says of the client's process, read through a pidfd
(Linux 6.5+) so that a process that took its PID is never described: its
executable, start time (clock ticks after boot: with pid, it names one
process), systemd unit ("-" for none; user-unit= too under a user's service
manager, which that user names) and cgroup v2 path. Where that cannot be read
(another user's process, and we are not root; a process that has exited; a PID
namespace we cannot see into; an older kernel or another system), the line
says why in attest-error= instead, and exe is "?" unless /proc/PID/exe could
be read alone. The executable's path is the client's choice, and so is its
cgroup in a subtree delegated to it: both are quoted when not one printable
word; treat them as information, never as authorization.
Started by systemd or systemd-socket-activate with one listening socket,
serve serves it, and SOCKET may be left out:
  systemd-socket-activate -l /tmp/who.sock peercred serve
`,
		run: func(ctx context.Context, addr string) error {
			return serve(ctx, addr, &lf, *asJSON, &peercred.AttestOptions{HashExecutable: *hash}, stdout, log)
		},
	}
}

func serve(ctx context.Context, addr string, lf *listenFlags, asJSON bool, opts *peercred.AttestOptions, stdout io.Writer, log *slog.Logger) error {
	l, addr, err := lf.listen(ctx, addr, &peercred.ListenConfig{Logger: log})
	if err != nil {
		return err
	}
	defer l.Close() // removes the socket file (not systemd's)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	log.Info("listening; connect with "+connectHint(addr), "socket", addr, "pid", os.Getpid())

	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	for {
		c, err := l.AcceptPeerCred()
		if err != nil {
			if ctx.Err() != nil {
				log.Info("stopped", "socket", addr)
				return nil
			}
			if backoff.Accept(ctx, err, &delay) {
				continue // one client's credentials could not be read (logged), or EMFILE
			}
			return err
		}
		delay = 0
		p := describe(c, time.Now(), opts)
		if err := p.print(stdout, asJSON); err != nil {
			c.Close()
			return err
		}
		wg.Go(func() {
			c.SetWriteDeadline(time.Now().Add(time.Second))
			io.WriteString(c, p.line()+"\n")
			lingeringClose(c)
		})
	}
}

// lingeringClose ends c without turning what the client may have sent and we
// did not read into a reset (ECONNRESET) that would hide our answer: it shuts
// down our side, and reads until the client closes its own, for a moment.
func lingeringClose(c *peercred.Conn) {
	defer c.Close()
	if err := c.CloseWrite(); err != nil {
		return
	}
	c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	io.Copy(io.Discard, io.LimitReader(c, 1<<20))
}

// connectHint says how to connect to addr from a shell.
func connectHint(addr string) string {
	if name, ok := strings.CutPrefix(addr, "@"); ok {
		return "socat - ABSTRACT-CONNECT:" + name
	}
	return "nc -U " + addr
}
