package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/internal/ratelog"
	"github.com/peercred/peercred/privsep"
	"github.com/peercred/peercred/privsep/confine"
)

// Timeouts of the daemon.
const (
	readyTimeout = 15 * time.Second // from spawn to a worker serving HTTP
	stopTimeout  = 5 * time.Second  // a worker's graceful stop, then SIGKILL
)

// errWorkerEnded ends the daemon when its worker exits for good.
var errWorkerEnded = errors.New("the web worker exited and will not be restarted")

// daemon is the privileged parent.
type daemon struct {
	cfg    *config
	log    *slog.Logger
	start  time.Time
	url    string
	secret string // the secret file's path
	worker privsep.Spec
	admins []uint32

	sup *privsep.Supervisor
	web *privsep.Process

	passedControl *peercred.Listener // the control socket, if systemd passed it

	mu       sync.Mutex
	readyPID int           // the last worker that said it serves
	readyCh  chan struct{} // closed and replaced when readyPID changes

	restartMu sync.Mutex // one restart at a time
	cancel    context.CancelCauseFunc

	ctlWarn *ratelog.Limiter[uint32] // rate-limits the control socket's warnings, per uid
	ctlInfo *ratelog.Limiter[uint32] // rate-limits the lines about "status" commands, per uid
}

// runDaemon runs the daemon until a signal, a "stop" command or a fatal
// error, and returns the exit status.
func runDaemon(cfg *config, stderr io.Writer) int {
	log := newLogger(stderr, cfg.logJSON, cfg.verbose)
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	// SIGHUP too: a closed terminal or a reload request must not leave the
	// socket and the worker behind.
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		select {
		case sig := <-sigs:
			cancel(fmt.Errorf("signal %v", sig))
		case <-ctx.Done():
		}
	}()

	d := &daemon{cfg: cfg, log: log, start: time.Now(), cancel: cancel, readyCh: make(chan struct{})}
	if err := d.run(ctx); err != nil {
		log.Error("privsepd: " + err.Error())
		return exitFail
	}
	log.Info("privsepd stopped")
	return exitOK
}

func (d *daemon) run(ctx context.Context) error {
	if err := d.setUp(); err != nil {
		if d.passedControl != nil {
			d.passedControl.Close()
		}
		return err
	}
	l, err := d.listenControl(ctx)
	if err != nil {
		return err
	}
	defer l.Close() // removes the socket file (not systemd's)

	d.sup = privsep.New(privsep.Config{
		Logger: d.log,
		Roles: map[string]privsep.Policy{
			"web": {
				// Each worker process may get the secret and its
				// listener once: a second request is refused.
				Files:  []privsep.PathRule{{Path: d.secret, Once: true}},
				Listen: []privsep.ListenRule{{Network: "tcp", Address: d.cfg.httpAddr, Once: true}},
				Ops:    map[string]privsep.OpRule{"ready": {Once: true}},
			},
		},
	})
	d.sup.Handle("ready", d.ready)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), stopTimeout+time.Second)
		defer cancel()
		if err := d.sup.Shutdown(sctx); err != nil {
			d.log.Warn("privsepd: " + err.Error())
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, readyTimeout)
	d.web, err = d.sup.Spawn(sctx, d.worker)
	cancel()
	if err == nil {
		_, err = d.waitReady(ctx, 0)
	}
	if err != nil {
		if ctx.Err() != nil {
			d.log.Info("stopped before the worker was ready", "reason", context.Cause(ctx).Error())
			return nil
		}
		return err
	}
	go func() {
		select {
		case <-d.web.Done():
			d.cancel(errWorkerEnded)
		case <-ctx.Done():
		}
	}()

	var wg sync.WaitGroup
	wg.Go(func() { d.serveControl(ctx, l) })
	d.log.Info("privsepd ready: try curl "+d.url+" and privsepd ctl status",
		"url", d.url, "control", d.cfg.control)

	<-ctx.Done()
	cause := context.Cause(ctx)
	d.log.Info("shutting down", "reason", cause.Error())
	l.Close()
	wg.Wait()
	if errors.Is(cause, errWorkerEnded) {
		return fmt.Errorf("%w: %v", cause, d.web.Err())
	}
	return nil
}

// setUp decides who the worker runs as and prepares the state directory.
func (d *daemon) setUp() error {
	euid, egid := uint32(os.Geteuid()), uint32(os.Getegid())
	d.worker = privsep.Spec{
		Role:         "web",
		Restart:      privsep.RestartOnFailure,
		HelloTimeout: readyTimeout,
	}
	if euid == 0 {
		// parseFlags looked the user up, and refused root.
		d.worker.UID, d.worker.GID = d.cfg.workerUID, d.cfg.workerGID
		d.worker.Groups = []uint32{} // no supplementary groups
		d.admins = append(d.admins, 0)
	} else {
		d.worker.UID, d.worker.GID = euid, egid
		// Without root the kernel lets us start processes only as
		// ourselves, and our own user administers the daemon.
		d.admins = append(d.admins, 0, euid)
	}
	d.admins = append(d.admins, d.cfg.admins.IDs...)
	if v, ok := os.LookupEnv("GORACE"); ok {
		// A worker's environment is empty but for what the spec lists;
		// keep the race detector's settings (tests set
		// atexit_sleep_ms=0) for a binary built with -race.
		d.worker.Env = append(d.worker.Env, "GORACE="+v)
	}
	if d.cfg.confine {
		d.worker.Confine = webConfine(euid == 0)
	}
	logFormat := "text"
	if d.cfg.logJSON {
		logFormat = "json"
	}
	host, port, _ := net.SplitHostPort(d.cfg.httpAddr) // checked by parseFlags
	if host == "" {
		host = "localhost"
	}
	d.url = "http://" + net.JoinHostPort(host, port) + "/"
	// Before any process starts: the passed sockets are inheritable
	// until taken.
	passed, err := d.activatedControl(d.controlConfig())
	if err != nil {
		return fmt.Errorf("control socket: %w", err)
	}
	d.passedControl = passed

	d.log.Info("privsepd starting", "pid", os.Getpid(), "uid", euid,
		"worker_uid", d.worker.UID, "worker_gid", d.worker.GID, "worker_user", ids.UserName(d.worker.UID),
		"http", d.cfg.httpAddr, "state", d.cfg.stateDir, "control", d.cfg.control)
	if euid != 0 {
		// What keeps the worker from the secret then is its
		// confinement alone (Landlock), and nothing keeps the user's
		// other processes from it.
		what := ": its confinement (Landlock) keeps it from opening the secret itself, but any other process of that user can"
		if !d.cfg.confine {
			what = ", and with -confine=false it can read the secret itself"
		}
		d.log.Warn("not running as root: no privilege drop; the web worker runs as uid "+ids.WithName(euid)+
			", like the daemon"+what+" (run as root to see the separation)", "uid", euid)
	}
	secret, err := prepareState(d.cfg.stateDir, d.log)
	if err != nil {
		return err
	}
	d.secret = secret
	d.worker.Args = []string{d.cfg.httpAddr, d.secret, logFormat}
	return nil
}

// controlConfig is the control socket's ListenConfig. The file is mode
// 0666: the Authorizer, on the kernel's credentials, decides who may
// connect.
//
// The rules are AnyOf, as an operator reads the flags: each -allow-uid,
// -allow-gid and -control-unit lets more callers in. AllOf would make
// -control-unit shut out root and the admins (whose shells run in session
// scopes, not in that unit) and change what the other flags mean. The
// unit is checked last: the UID and group checks are cheaper, and a caller
// they admit is not attested at all.
func (d *daemon) controlConfig() *peercred.ListenConfig {
	auth := []peercred.Authorizer{peercred.AllowUIDs(d.controlUIDs()...)}
	if len(d.cfg.allowGID.IDs) > 0 {
		auth = append(auth, peercred.AllowGIDs(d.cfg.allowGID.IDs...))
	}
	if len(d.cfg.units) > 0 {
		// Refuses, naming the caller's unit and cgroup, what it cannot
		// attest (Linux before 6.5, a caller gone, another user's
		// process without root): never a match.
		auth = append(auth, peercred.AllowUnits(d.cfg.units...))
	}
	lc := &peercred.ListenConfig{Mode: 0o666, Authorize: peercred.AnyOf(auth...), Logger: d.log}
	if strings.HasPrefix(d.cfg.control, "@") {
		lc.Mode = 0 // an abstract socket has no file; the Authorizer is all there is
	}
	return lc
}

// controlUIDs are the users the control socket admits (besides -allow-gid).
func (d *daemon) controlUIDs() []uint32 {
	uids := append([]uint32{}, d.admins...)
	return append(uids, d.cfg.allow.IDs...)
}

// listenControl listens on the control socket, unless setUp took the one
// systemd passed.
func (d *daemon) listenControl(ctx context.Context) (*peercred.Listener, error) {
	l := d.passedControl
	if l == nil {
		var err error
		l, err = d.controlConfig().Listen(ctx, d.cfg.control)
		if errors.Is(err, syscall.EADDRINUSE) {
			var st syscall.Stat_t
			if !strings.HasPrefix(d.cfg.control, "@") && syscall.Lstat(d.cfg.control, &st) == nil && int(st.Uid) != os.Geteuid() {
				return nil, fmt.Errorf("control socket %s: in use by a socket of uid %d, not yours: another user holds that name (choose another -control): %w", d.cfg.control, st.Uid, err)
			}
			return nil, fmt.Errorf("control socket %s: another privsepd is running (try privsepd ctl -control %[1]s status): %w", d.cfg.control, err)
		}
		if err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	attrs := []any{"path", d.cfg.control, "allow_uids", ids.Join(d.controlUIDs()),
		"allow_gids", ids.Join(d.cfg.allowGID.IDs), "allow_units", d.cfg.units.String(), "admin_uids", ids.Join(d.admins)}
	if d.passedControl != nil {
		attrs = append(attrs, "passed_by", "systemd")
	}
	d.log.Info("control socket listening", attrs...)
	d.warnControlUnits()
	return l, nil
}

// controlSocketName is the name (FileDescriptorName=) of the control socket
// when systemd passes it.
const controlSocketName = "control"

// activatedControl takes the control socket if systemd (or
// systemd-socket-activate) passed it: the socket named "control", or a
// single socket passed without a name. It returns nil when privsepd was
// not socket-activated. Any other socket passed is an error: privsepd would
// leave it unserved.
func (d *daemon) activatedControl(lc *peercred.ListenConfig) (*peercred.Listener, error) {
	passed, err := lc.ActivationListeners()
	if errors.Is(err, peercred.ErrNotActivated) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for name := range passed {
		names = append(names, name)
	}
	slices.Sort(names)
	ls := passed[controlSocketName]
	if len(passed) == 1 && len(passed[peercred.UnnamedSocket]) == 1 {
		ls = passed[peercred.UnnamedSocket]
	}
	if len(ls) != 1 || len(passed) != 1 {
		for _, ls := range passed {
			for _, l := range ls {
				l.Close()
			}
		}
		return nil, fmt.Errorf("systemd passed sockets named %s; privsepd takes one, named %s (FileDescriptorName=%[2]s)",
			strings.Join(names, ", "), controlSocketName)
	}
	l := ls[0]
	addr := l.Addr().String()
	if d.cfg.controlSet && d.cfg.control != addr {
		l.Close()
		return nil, fmt.Errorf("systemd passed %s, not -control %s (leave -control out, or make them agree)", addr, d.cfg.control)
	}
	d.cfg.control = addr
	return l, nil
}

// ready serves the worker's "ready" call: it has its socket and secret and
// serves HTTP.
func (d *daemon) ready(ctx context.Context, req *privsep.Request) ([]byte, []*os.File, error) {
	d.log.Info("web worker serving", "pid", req.Peer.PID, "uid", req.Peer.UID, "gid", req.Peer.GID, "url", d.url)
	d.mu.Lock()
	d.readyPID = req.Peer.PID
	close(d.readyCh)
	d.readyCh = make(chan struct{})
	d.mu.Unlock()
	// The worker shows on its page what the parent verified of it.
	if c := req.Peer.Confinement; c != nil {
		d.log.Info("web worker confinement", "pid", req.Peer.PID, "confinement", c.String())
		return []byte(c.String()), nil, nil
	}
	return []byte("none (-confine=false)"), nil, nil
}

// waitReady waits until the current worker process, verified by the
// supervisor, has said it serves, and returns its PID. It fails if a start
// of the worker fails meanwhile, if it is restarted more than maxRestarts
// times in total meanwhile, if it ends for good, or after readyTimeout.
func (d *daemon) waitReady(ctx context.Context, maxRestarts int) (int, error) {
	ctx, cancel := context.WithTimeoutCause(ctx, readyTimeout, fmt.Errorf("the web worker is not serving after %v", readyTimeout))
	defer cancel()
	for {
		if err := d.web.Ready(ctx); err != nil {
			if errors.Is(err, privsep.ErrWorkerGone) {
				return 0, fmt.Errorf("the web worker exited: %v", d.web.Err())
			}
			return 0, err
		}
		pid := d.web.PID()
		d.mu.Lock()
		ready, changed := d.readyPID, d.readyCh
		d.mu.Unlock()
		if pid != 0 && pid == ready {
			return pid, nil
		}
		if d.web.Restarts() > maxRestarts {
			return 0, errors.New("the web worker failed to start (its error is above)")
		}
		select {
		case <-changed:
		case <-d.web.Done():
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	}
}

// restartWorker replaces the worker process and waits for the new one to
// serve.
func (d *daemon) restartWorker(ctx context.Context) (old, pid int, err error) {
	d.restartMu.Lock()
	defer d.restartMu.Unlock()
	old, restarts := d.web.PID(), d.web.Restarts()
	d.mu.Lock()
	d.readyPID = 0 // the new worker may get the old one's PID
	d.mu.Unlock()
	sctx, cancel := context.WithTimeout(ctx, stopTimeout)
	err = d.web.Restart(sctx)
	cancel()
	if err != nil {
		return old, 0, err
	}
	pid, err = d.waitReady(ctx, restarts+1)
	return old, pid, err
}

// isAdmin reports whether uid may restart the worker and stop the daemon.
func (d *daemon) isAdmin(uid uint32) bool { return slices.Contains(d.admins, uid) }

// webConfine is the web worker's confinement: no file access but what it
// reads for its page, and no new socket at all (bar socketpair): its HTTP
// listener comes from the parent, already listening, and its channels to the
// parent are socketpairs. Without the unix promise it cannot reach a
// pathname Unix socket, which neither Landlock before ABI 9 nor a network
// namespace keeps it from. With root (privsepd runs as root) it also gets
// new network and IPC namespaces.
func webConfine(root bool) *confine.Config {
	return &confine.Config{
		Promises: []confine.Promise{confine.PromiseRpath},
		Landlock: []confine.LandlockRule{
			// Its own and its parent's status, for the page: not the
			// rest of /proc (/proc/self resolves, in the worker, to
			// the worker).
			{Path: "/proc/self", Access: confine.LandlockRead},
			{Path: "/proc/" + strconv.Itoa(os.Getpid()) + "/status", Access: confine.LandlockRead},
			{Path: "/etc/passwd", Access: confine.LandlockRead, IgnoreMissing: true},
			{Path: "/etc/group", Access: confine.LandlockRead, IgnoreMissing: true},
			{Path: "/etc/nsswitch.conf", Access: confine.LandlockRead, IgnoreMissing: true},
		},
		NoFile: 1024,
		NewNet: root,
		NewIPC: root,
	}
}
