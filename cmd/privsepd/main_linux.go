package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/cmd/internal/version"
	"github.com/peercred/peercred/privsep"
)

// Exit statuses.
const (
	exitOK    = 0 // success; the daemon stopped by SIGINT, SIGTERM or "stop"
	exitFail  = 1 // a runtime error, or a refused control command
	exitUsage = 2 // bad command line
)

func main() {
	privsep.Register("web", web)
	privsep.Main() // in the worker process, runs web and exits
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run runs the command line args and returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "ctl" {
		return runCtl(args[1:], stdout, stderr)
	}
	cfg, code, ok := parseFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	return runDaemon(cfg, stderr)
}

const usageHead = `Usage:
  privsepd [flags]                         run the daemon
  privsepd ctl [-control PATH] COMMAND     ask a running daemon: status,
                                           restart-worker or stop
  privsepd --version                       the version of this build

privsepd is a small privilege-separated web server. The parent keeps root and
the policy; it starts a "web" worker as an unprivileged user, checks with the
kernel who the worker is, and hands it, on request and as the policy allows, a
listening socket on the HTTP address and a root-only secret file (created in
the state directory on first start). The worker serves a page showing its PID
and UID, the length and SHA-256 digest of the secret it read (never the secret
itself: anyone who reaches the port sees the page), and how many requests it
served. It keeps its connections below its descriptor limit, closing the idle
ones that waited longest, so that no user can hold it down with idle
connections.

The control socket (mode 0666) admits root, the daemon's own user, the users
of -allow-uid, -allow-gid and -admin-uid, and the processes of the systemd
units of -control-unit, as the kernel reports them: each flag admits more
callers, none narrows another's. Others are disconnected and logged, with what
did not match (their uid, groups, unit and cgroup). "status" is for all of
them; "restart-worker" and "stop" for admins only: root, the -admin-uid users,
and the daemon's own user when it is not root (a unit makes no admin). Every
command is logged with the caller's pid and uid.

Without root, privsepd runs the same flow as the calling user, with no
privilege drop (its log says so), on an unprivileged port.

Started by systemd (or systemd-socket-activate), privsepd serves the sockets
it is passed: the Unix socket named "control" (FileDescriptorName=control)
as its control socket, in place of -control. See cmd/privsepd/systemd/ for
example units.

Flags:
`

const usageTail = `
Examples:
  privsepd                                  # as root: 127.0.0.1:80, worker as nobody
  curl http://127.0.0.1:80/
  privsepd -http 127.0.0.1:8081 -user www-data -allow-gid adm -admin-uid 1000
  privsepd ctl status
  sudo privsepd ctl restart-worker

SIGINT, SIGTERM and "ctl stop" stop the worker and remove the control socket
(not one that systemd passed: that is systemd's).

Exit status:
  0  success; the daemon stopped by SIGINT, SIGTERM or "ctl stop"
  1  error (cannot listen, the worker cannot start, ...), or a refused
     control command
  2  usage error
`

// config is the daemon's command line.
type config struct {
	httpAddr string
	stateDir string
	control  string
	user     string
	userSet  bool // -user was given: without root, it must name us
	confine  bool // confine the web worker (Landlock, seccomp, limits)
	allow    ids.List
	allowGID ids.List
	admins   ids.List
	units    unitList // -control-unit
	logJSON  bool
	verbose  bool

	// controlSet: -control was given; a socket systemd passes must be
	// that one.
	controlSet bool
	// workerUID and workerGID are -user's IDs, looked up by parseFlags
	// when root (or -user is given).
	workerUID, workerGID uint32
}

// parseFlags parses the daemon's flags. ok is false when the program should
// exit with code.
func parseFlags(args []string, stdout, stderr io.Writer) (cfg *config, code int, ok bool) {
	cfg = &config{allow: ids.List{Kind: ids.Users}, allowGID: ids.List{Kind: ids.Groups}, admins: ids.List{Kind: ids.Users}}
	fs := flag.NewFlagSet("privsepd", flag.ContinueOnError)
	// Usage goes to stdout when asked for, and is only pointed to after
	// an error, which the flag package prints to stderr.
	fs.SetOutput(stderr)
	fs.Usage = func() {}
	root := os.Geteuid() == 0
	fs.StringVar(&cfg.httpAddr, "http", defaultHTTP(root), "serve HTTP on `ADDR`: 127.0.0.1:80 as root, 127.0.0.1:8080 otherwise")
	fs.StringVar(&cfg.stateDir, "state", defaultState(root), "state `DIR` (mode 0700) for the secret file, created on first start:\n"+
		"/var/lib/privsepd as root, $XDG_STATE_HOME/privsepd or ~/.local/state/privsepd otherwise")
	fs.StringVar(&cfg.control, "control", defaultControl(root), "control socket `PATH`: /run/privsepd.sock as root,\n"+
		"$XDG_RUNTIME_DIR/privsepd.sock or /tmp/privsepd-UID.sock otherwise")
	fs.StringVar(&cfg.user, "user", "nobody", "run the web worker as `USER` (a name or UID; its primary group from the\n"+
		"user database, or the same number); needs root, without which the worker is you")
	fs.Var(&cfg.allow, "allow-uid", "let `USER` (a name or UID) ask for status; repeatable, or comma-separated")
	fs.Var(&cfg.allowGID, "allow-gid", "let members of `GROUP` (a name or GID) ask for status; repeatable")
	fs.Var(&cfg.admins, "admin-uid", "let `USER` (a name or UID) also restart the worker and stop the daemon;\nrepeatable (root always may)")
	fs.Var(&cfg.units, "control-unit", "let the processes of the systemd `UNIT` (such as backup.service; the unit\nsystemd runs them in, as their cgroup says), whatever their user, ask for\nstatus; repeatable, or comma-separated. Needs Linux 6.5+, and root for\nother users' processes: otherwise it admits nobody")
	fs.BoolVar(&cfg.confine, "confine", true, "confine the web worker: no file access but through the parent, no new\nsockets (its listener comes from the parent), Landlock and seccomp on\nevery thread, verified by the parent; -confine=false turns it off")
	fs.BoolVar(&cfg.logJSON, "log-json", false, "log JSON objects rather than text (log/slog)")
	fs.BoolVar(&cfg.verbose, "v", false, "log at debug level too: every capability call of the worker")
	showVersion := fs.Bool("version", false, "print the version of this build and exit")
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usageHead)
		fs.SetOutput(stdout)
		fs.PrintDefaults()
		fmt.Fprint(stdout, usageTail)
		return nil, exitOK, false
	}
	if err != nil {
		fmt.Fprint(stderr, "Run 'privsepd -h' for usage.\n")
		return nil, exitUsage, false
	}
	if *showVersion {
		fmt.Fprintln(stdout, version.String("privsepd"))
		return nil, exitOK, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "privsepd: unexpected argument %q (the client is \"privsepd ctl COMMAND\")\nRun 'privsepd -h' for usage.\n", fs.Arg(0))
		return nil, exitUsage, false
	}
	fs.Visit(func(f *flag.Flag) {
		cfg.userSet = cfg.userSet || f.Name == "user"
		cfg.controlSet = cfg.controlSet || f.Name == "control"
	})
	if err := cfg.check(root); err != nil {
		fmt.Fprintf(stderr, "privsepd: %v\nRun 'privsepd -h' for usage.\n", err)
		return nil, exitUsage, false
	}
	return cfg, 0, true
}

// check checks the flags' values and looks up the worker's user: what is
// wrong here is a usage error.
func (cfg *config) check(root bool) error {
	_, port, err := net.SplitHostPort(cfg.httpAddr)
	if err != nil {
		return fmt.Errorf("-http %q: want HOST:PORT, such as 127.0.0.1:8080: %w", cfg.httpAddr, err)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("-http %q: %q is not a port number from 1 to 65535", cfg.httpAddr, port)
	}
	if cfg.control == "" {
		return errors.New("-control is empty: want a socket path, or @name")
	}
	if cfg.stateDir == "" {
		return errors.New("-state is empty: want a directory")
	}
	if !root && !cfg.userSet {
		return nil // the worker runs as us
	}
	uid, gid, err := ids.UID(cfg.user)
	if err != nil {
		return fmt.Errorf("-user: %w", err)
	}
	euid := uint32(os.Geteuid())
	switch {
	case root && (uid == 0 || gid == 0):
		return fmt.Errorf("-user %s: uid %d gid %d: refusing to run the worker as root or in group 0", cfg.user, uid, gid)
	case !root && uid != euid:
		return fmt.Errorf("-user %s: only root can run the worker as another user (we are uid %d)", cfg.user, euid)
	}
	cfg.workerUID, cfg.workerGID = uid, gid
	return nil
}

func defaultHTTP(root bool) string {
	if root {
		return "127.0.0.1:80"
	}
	return "127.0.0.1:8080"
}

func defaultState(root bool) string {
	if root {
		return "/var/lib/privsepd"
	}
	if d := os.Getenv("XDG_STATE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "privsepd")
	}
	if home, err := os.UserHomeDir(); err == nil && isDir(home) {
		return filepath.Join(home, ".local", "state", "privsepd")
	}
	return "/tmp/privsepd-" + strconv.Itoa(os.Geteuid())
}

// defaultControl is the daemon's control socket when -control is not given.
func defaultControl(root bool) string {
	if root {
		return "/run/privsepd.sock"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) && isDir(d) {
		return filepath.Join(d, "privsepd.sock")
	}
	return "/tmp/privsepd-" + strconv.Itoa(os.Geteuid()) + ".sock"
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// newLogger returns the daemon's (and the worker's) logger on w.
func newLogger(w io.Writer, asJSON, verbose bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: slog.LevelInfo}
	if verbose {
		opts.Level = slog.LevelDebug
	}
	if asJSON {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
