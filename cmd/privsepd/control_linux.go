package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/peercred/peercred/cmd/internal/backoff"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/cmd/internal/printable"
	"github.com/peercred/peercred/internal/ratelog"
)

// The control protocol: the client sends one command line; the daemon
// answers "ok" and the result, "denied: REASON" or "error: REASON", one
// line each, and closes the connection.
const (
	replyOK     = "ok"
	replyDenied = "denied: "
	replyError  = "error: "
)

// serveControl answers control connections until l is closed (at shutdown).
func (d *daemon) serveControl(ctx context.Context, l *peercred.Listener) {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	// A user who connects in a loop gets a few warnings logged per
	// interval, and a count of the others, also at the end (after wg).
	d.ctlWarn = &ratelog.Limiter[uint32]{Summary: func(uid uint32, dropped uint64) {
		d.log.Warn("control: warnings not logged", "uid", uid, "dropped", dropped, "interval", ratelog.DefaultInterval)
	}}
	defer d.ctlWarn.Close()
	// Any allowed user may ask for the status, as often as it likes: a
	// few of its commands are logged per interval, and a count of the
	// others.
	d.ctlInfo = &ratelog.Limiter[uint32]{Summary: func(uid uint32, dropped uint64) {
		d.log.Info("control: commands not logged", "uid", uid, "dropped", dropped, "interval", ratelog.DefaultInterval)
	}}
	defer d.ctlInfo.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	var delay time.Duration
	perUID := map[uint32]int{} // connections open, per caller uid
	var mu sync.Mutex
	for {
		c, err := l.AcceptPeerCred()
		if err != nil {
			if ctx.Err() == nil && backoff.Accept(ctx, err, &delay) {
				continue // one peer's credentials could not be read (logged), or EMFILE
			}
			if ctx.Err() == nil {
				d.log.Error("control socket: " + err.Error())
			}
			return
		}
		delay = 0
		uid := c.Cred().UID
		mu.Lock()
		if perUID[uid] >= maxControlConnsPerUID {
			mu.Unlock()
			d.warn(uid, "control: too many connections from one user", "pid", c.Cred().PID, "uid", uid)
			c.Close()
			continue
		}
		perUID[uid]++
		mu.Unlock()
		wg.Go(func() {
			d.control(ctx, c)
			mu.Lock()
			perUID[uid]--
			mu.Unlock()
		})
	}
}

// maxControlConnsPerUID keeps one allowed user from holding every
// connection (and descriptor) of the control socket.
const maxControlConnsPerUID = 4

// control serves one control connection: the listener's Authorizer has
// admitted the caller; each command is checked again, and logged, with the
// caller's kernel-reported credentials.
func (d *daemon) control(ctx context.Context, c *peercred.Conn) {
	defer c.Close()
	cred := c.Cred()
	// A command is one short line: a caller gets two seconds to send it,
	// and shutdown cuts any wait short.
	c.SetDeadline(time.Now().Add(2 * time.Second))
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReader(io.LimitReader(c, 256)).ReadString('\n')
	if err != nil {
		d.warn(cred.UID, "control: no command", "pid", cred.PID, "uid", cred.UID, "gid", cred.GID, "err", err.Error())
		return
	}
	cmd := strings.TrimSpace(line)
	attrs := []any{"cmd", printable.Word(cmd), "pid", cred.PID, "uid", cred.UID, "gid", cred.GID}
	var reply string
	switch cmd {
	case "status":
		if d.ctlInfo.Allow(cred.UID) {
			d.log.Info("control command", attrs...)
		}
		reply = replyOK + "\n" + d.status(cred)
	case "restart-worker", "stop":
		if !d.isAdmin(cred.UID) {
			why := fmt.Sprintf("uid %s is not an admin of this daemon (root or -admin-uid)", ids.WithName(cred.UID))
			d.warn(cred.UID, "control command refused", append(attrs, "reason", why)...)
			reply = replyDenied + why + "\n"
			break
		}
		if cmd == "stop" {
			d.log.Info("control command", attrs...)
			c.Write([]byte(replyOK + "\nprivsepd is stopping\n"))
			d.cancel(fmt.Errorf("stop command from pid %d uid %d", cred.PID, cred.UID))
			return
		}
		d.log.Info("control command", attrs...)
		c.SetDeadline(time.Now().Add(stopTimeout + readyTimeout + 5*time.Second))
		old, pid, err := d.restartWorker(ctx)
		if err != nil {
			d.log.Warn("restart-worker failed", append(attrs, "err", err.Error())...)
			reply = replyError + err.Error() + "\n"
			break
		}
		d.log.Info("web worker restarted", append(attrs, "old_pid", old, "new_pid", pid)...)
		reply = fmt.Sprintf("%s\nweb worker restarted: pid %d -> %d\n", replyOK, old, pid)
	default:
		d.warn(cred.UID, "control: unknown command", attrs...)
		reply = fmt.Sprintf("%sunknown command %q (want status, restart-worker or stop)\n", replyError, cmd)
	}
	io.WriteString(c, reply)
}

// warn logs a warning about a control connection of uid, unless uid has
// had its share of them for now (see serveControl).
func (d *daemon) warn(uid uint32, msg string, args ...any) {
	if d.ctlWarn.Allow(uid) {
		d.log.Warn(msg, args...)
	}
}

// status describes the daemon and its worker to the caller.
func (d *daemon) status(caller *peercred.Cred) string {
	var b strings.Builder
	fmt.Fprintf(&b, "daemon:  pid %d, uid %s, up %v\n", os.Getpid(), ids.WithName(uint32(os.Geteuid())),
		time.Since(d.start).Round(time.Second))
	if pid := d.web.PID(); pid != 0 {
		fmt.Fprintf(&b, "worker:  web, pid %d, uid %s, gid %d, restarts %d\n", pid, ids.WithName(d.worker.UID),
			d.worker.GID, d.web.Restarts())
	} else {
		fmt.Fprintf(&b, "worker:  web, restarting (restarts %d)\n", d.web.Restarts())
	}
	fmt.Fprintf(&b, "confine: %s\n", d.web.Confinement())
	fmt.Fprintf(&b, "http:    %s\n", d.url)
	fmt.Fprintf(&b, "secret:  %s\n", d.secret)
	fmt.Fprintf(&b, "control: %s\n", d.cfg.control)
	admin := "no"
	if d.isAdmin(caller.UID) {
		admin = "yes"
	}
	fmt.Fprintf(&b, "you:     pid %d, uid %s, admin: %s\n", caller.PID, ids.WithName(caller.UID), admin)
	return b.String()
}

const ctlUsage = `Usage: privsepd ctl [flags] COMMAND

Send COMMAND to a running privsepd over its control socket and print the
answer:
  status          the daemon, its worker (pid, uid, restarts), the HTTP address
  restart-worker  replace the web worker with a new process (admins only)
  stop            stop the daemon (admins only)

Before sending anything, ctl checks with the kernel (SO_PEERCRED) that the
socket is served by root or by you, and refuses any other server: someone
may have taken the socket's name.

Exit status: 0 done, 1 refused or failed, 2 usage error.

Flags:
`

// runCtl is the control client.
func runCtl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("privsepd ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // see parseFlags
	const hint = "Run 'privsepd ctl -h' for usage.\n"
	path := fs.String("control", clientControl(), "the daemon's control socket `PATH`: your own daemon's if it is there,\nelse /run/privsepd.sock")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, ctlUsage)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		return exitOK
	}
	if err != nil {
		fmt.Fprint(stderr, hint)
		return exitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintf(stderr, "privsepd ctl: want one COMMAND, got %d\n%s", fs.NArg(), hint)
		return exitUsage
	}
	if *path == "" {
		fmt.Fprintf(stderr, "privsepd ctl: -control is empty: want the daemon's socket path, or @name\n%s", hint)
		return exitUsage
	}
	if *timeout <= 0 {
		fmt.Fprintf(stderr, "privsepd ctl: -timeout %v: want a positive duration, such as 30s\n%s", *timeout, hint)
		return exitUsage
	}
	cmd := fs.Arg(0)
	switch cmd {
	case "status", "restart-worker", "stop":
	default:
		fmt.Fprintf(stderr, "privsepd ctl: unknown command %q (want status, restart-worker or stop)\n%s", cmd, hint)
		return exitUsage
	}
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "privsepd ctl: "+format+"\n", args...)
		return exitFail
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	c, err := peercred.Dial(ctx, *path)
	if err != nil {
		return fail("cannot reach the daemon (is it running? -control names its socket): %v", err)
	}
	defer c.Close()
	srv, me := c.Cred(), uint32(os.Geteuid())
	if srv.UID != 0 && srv.UID != me {
		return fail("%s is served by uid %s (pid %d), neither root nor you: refusing to talk to it (someone may have taken the socket)",
			*path, ids.WithName(srv.UID), srv.PID)
	}
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	// A caller the daemon does not admit finds the connection closed:
	// the write may fail, and the read end with nothing.
	var answer []byte
	_, err = io.WriteString(c, cmd+"\n")
	if err == nil {
		answer, err = io.ReadAll(io.LimitReader(c, 64<<10))
	}
	if len(answer) == 0 {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fail("%s: no answer within %v", *path, *timeout)
		}
		return fail("the daemon at %s closed the connection without an answer: uid %s is not allowed to use it (see privsepd -allow-uid, -allow-gid)",
			*path, ids.WithName(me))
	}
	first, rest, _ := strings.Cut(string(answer), "\n")
	switch {
	case first == replyOK:
		io.WriteString(stdout, rest)
		return exitOK
	case strings.HasPrefix(first, replyDenied):
		return fail("%s: %s", cmd, first)
	default:
		return fail("%s: %s", cmd, strings.TrimPrefix(first, replyError))
	}
}

// clientControl is ctl's default control socket: the calling user's own
// daemon's if there is one, else the system daemon's.
func clientControl() string {
	const system = "/run/privsepd.sock"
	if os.Geteuid() == 0 {
		return system
	}
	own := defaultControl(false)
	if _, err := os.Lstat(own); err == nil {
		return own
	}
	if _, err := os.Lstat(system); err == nil {
		return system
	}
	return own
}
