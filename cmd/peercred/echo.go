package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"github.com/peercred/peercred/cmd/internal/backoff"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/internal/ratelog"
)

func echoCommand(log *slog.Logger) *command {
	fs := flag.NewFlagSet("echo", flag.ContinueOnError)
	var lf listenFlags
	lf.define(fs)
	allowUIDs := &ids.List{Kind: ids.Users}
	allowGIDs := &ids.List{Kind: ids.Groups}
	fs.Var(allowUIDs, "allow-uid", "admit `USER` (a name or UID); repeatable, or comma-separated")
	fs.Var(allowGIDs, "allow-gid", "admit members of `GROUP` (a name or GID; primary or supplementary);\nrepeatable, or comma-separated")
	return &command{
		name: "echo", args: "SOCKET", fs: fs, server: true,
		about: `Serve SOCKET as a line echo server for allowed users: every line a client
sends comes back to it. Allowed are the users of -allow-uid and the members of
the groups of -allow-gid; without either, the user who started the server.
Any other client receives "Unauthorized access" and is disconnected, and the
refusal is logged on stderr with its pid, uid and gid, as the kernel reports
them: the first 5 of each user in 10 seconds, then one line with the number
not logged, so that a user who connects in a loop cannot flood the log. The
connections of allowed users are logged ("admitted", "closed") the same way.
Started by systemd or systemd-socket-activate with one listening socket,
echo serves it, and SOCKET may be left out.
`,
		run: func(ctx context.Context, addr string) error {
			auth, who := echoPolicy(allowUIDs.IDs, allowGIDs.IDs)
			l, addr, err := lf.listen(ctx, addr, &peercred.ListenConfig{Logger: log})
			if err != nil {
				return err
			}
			defer l.Close() // removes the socket file (not systemd's)
			stop := context.AfterFunc(ctx, func() { l.Close() })
			defer stop()
			log.Info("echo server listening; connect with "+connectHint(addr), "socket", addr, "pid", os.Getpid(), "allowed", who)

			// A user who connects in a loop gets a few refusals logged
			// per interval, and a count of the others; what is still
			// counted is logged on return, after the clients' goroutines.
			refusals := &ratelog.Limiter[uint32]{Summary: func(uid uint32, dropped uint64) {
				log.Warn("refusals not logged", "uid", uid, "dropped", dropped, "interval", ratelog.DefaultInterval)
			}}
			defer refusals.Close()
			sessions := &ratelog.Limiter[uint32]{Summary: func(uid uint32, dropped uint64) {
				log.Info("connections not logged", "uid", uid, "dropped", dropped, "interval", ratelog.DefaultInterval)
			}}
			defer sessions.Close()

			// On return, cancel ends the clients' conns, then wg waits
			// for their goroutines. The loop below asks ctx, the context
			// that closes l, whether it is done: a context derived from
			// it may learn of that after l is closed.
			clients, cancel := context.WithCancel(ctx)
			var wg sync.WaitGroup
			defer wg.Wait()
			defer cancel()
			var delay time.Duration
			for {
				c, err := l.AcceptPeerCred()
				if err != nil {
					if ctx.Err() != nil {
						log.Info("stopped", "socket", addr)
						return nil
					}
					if backoff.Accept(ctx, err, &delay) {
						continue
					}
					return err
				}
				delay = 0
				wg.Go(func() { echo(clients, c, auth, refusals, sessions, log) })
			}
		},
	}
}

// echoPolicy returns the Authorizer for the allow lists, and a description
// of it for the log.
func echoPolicy(uids, gids []uint32) (peercred.Authorizer, string) {
	if len(uids) == 0 && len(gids) == 0 {
		return peercred.SameUser(), "uid " + ids.WithName(uint32(os.Geteuid()))
	}
	var list []peercred.Authorizer
	who := ""
	if len(uids) > 0 {
		list = append(list, peercred.AllowUIDs(uids...))
		who = "uids " + ids.Join(uids)
	}
	if len(gids) > 0 {
		list = append(list, peercred.AllowGIDs(gids...))
		if who != "" {
			who += ", "
		}
		who += "gids " + ids.Join(gids)
	}
	return peercred.AnyOf(list...), who
}

// echo serves one client: refused with a message, or echoed line by line
// until it closes or the server stops. A refusal is logged if refusals
// allows it, an admitted connection if sessions does.
func echo(ctx context.Context, c *peercred.Conn, auth peercred.Authorizer, refusals, sessions *ratelog.Limiter[uint32], log *slog.Logger) {
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	cred := c.Cred()
	attrs := []any{"pid", cred.PID, "uid", cred.UID, "gid", cred.GID}
	if err := auth(cred); err != nil {
		if refusals.Allow(cred.UID) {
			log.Warn("refused", append(attrs, "reason", err.Error())...)
		}
		c.SetWriteDeadline(time.Now().Add(time.Second))
		io.WriteString(c, "Unauthorized access\n")
		lingeringClose(c)
		return
	}
	defer c.Close()
	logged := sessions.Allow(cred.UID)
	if logged {
		log.Info("admitted", attrs...)
	}
	r := bufio.NewReader(c)
	for {
		// A line longer than the buffer is echoed in pieces, as it comes.
		b, err := r.ReadSlice('\n')
		if len(b) > 0 {
			if _, werr := c.Write(b); werr != nil {
				err = werr
			}
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if logged && ctx.Err() == nil && !errors.Is(err, io.EOF) {
				log.Info("client error", append(attrs, "err", err.Error())...)
			}
			break
		}
	}
	if logged {
		log.Info("closed", attrs...)
	}
}
