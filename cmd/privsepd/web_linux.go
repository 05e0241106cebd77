package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/privsep"
)

// web is the worker: it runs unprivileged, gets its listening socket and the
// secret from the parent through capability calls, and serves the page.
// Its arguments are the HTTP address, the secret's path and the log format.
func web(ctx context.Context, w *privsep.Worker) error {
	args := w.Args()
	if len(args) != 3 {
		return fmt.Errorf("want 3 arguments (address, secret, log format), got %q", args)
	}
	addr, secret := args[0], args[1]
	log := newLogger(os.Stderr, args[2] == "json", false).With("role", "web", "pid", os.Getpid())

	pg := &page{
		pid: os.Getpid(), uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
		parent: os.Getppid(), addr: addr, secretPath: secret,
	}
	// Try the secret directly first, to show what the worker can't do.
	if f, err := os.Open(secret); err != nil {
		pg.direct = err.Error()
	} else {
		f.Close()
		pg.direct = "allowed: it runs as the daemon's own user (no privilege separation without root)"
	}
	f, err := w.Open(secret)
	if err != nil {
		return fmt.Errorf("the secret, through the parent: %w", err)
	}
	// The page proves that the worker read the secret, and shows it to
	// no one: its length and SHA-256 digest only, never its bytes.
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(f, 1<<20))
	fi, serr := f.Stat()
	f.Close()
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("read the secret: %w", err)
	}
	pg.secretLen, pg.secretSum = n, hex.EncodeToString(h.Sum(nil))
	pg.secretMode = fi.Mode().Perm()
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		pg.secretOwner = st.Uid
	}

	l, err := w.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("the HTTP listener, through the parent: %w", err)
	}
	// Anyone who reaches the port is a client: bound what each holds,
	// and the connections open at once (see connLimit).
	cl := newConnLimit(l, maxConns(), log)
	srv := &http.Server{
		Handler:           refuseBody(pg),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    8 << 10,
		ConnState:         cl.ConnState,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(cl) }()
	confinement, _, err := w.Call(ctx, "ready", nil)
	if err != nil {
		srv.Close()
		<-served
		return err
	}
	pg.confinement.Store(string(confinement))
	log.Info("serving", "addr", addr, "uid", pg.uid, "gid", pg.gid, "max_conns", cl.max)

	select {
	case err := <-served:
		return err
	case <-ctx.Done(): // the parent asked us to stop, or is gone
	}
	sctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	log.Info("stopped", "requests", pg.requests.Load())
	return err
}

// refuseBody answers a request that comes with a body, which the page
// never reads, with 413 and closes the connection; it passes the others to
// h. Left unread, a body under 256 KiB would be read by the http.Server
// after the answer, to reuse the connection: a client that announces one
// and never sends it would keep the connection busy until ReadTimeout, and
// a thousand such clients every connection the worker may hold.
func refuseBody(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength == 0 { // -1: chunked, or unknown
			h.ServeHTTP(w, r)
			return
		}
		// "Connection: close" spares the body's reading before the
		// answer, the deadline the one after (the server reads what is
		// left to reuse its buffer): the connection is closed at once.
		w.Header().Set("Connection", "close")
		http.NewResponseController(w).SetReadDeadline(time.Now())
		http.Error(w, "privsepd: no request body is accepted", http.StatusRequestEntityTooLarge)
	})
}

// page is the worker's web page.
type page struct {
	pid         int
	uid, gid    uint32
	parent      int
	addr        string
	secretPath  string
	direct      string // what opening the secret directly gave
	secretLen   int64  // the secret's length, and
	secretSum   string // its SHA-256 digest in hex: never the secret itself
	secretMode  os.FileMode
	secretOwner uint32
	confinement atomic.Value // string: what the parent verified, from its "ready" reply

	requests atomic.Int64
}

func (pg *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := pg.requests.Add(1)
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	self := procStatus("self")
	parent := procStatus(strconv.Itoa(pg.parent))
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, `privsepd: hello from the web worker

worker    pid %d, uid %s, gid %d
          its kernel view (/proc/self/status): Uid %s, NoNewPrivs %s, CapEff %s
parent    pid %d, uid %s: %s
socket    %s, bound by the parent and passed to the worker ("listen" call)
secret    %s (mode %#o, owner uid %d)
          the worker opening it itself: %s
          through the parent ("open" call): %d bytes, SHA-256 %s
          (compare with sha256sum; the secret itself is shown to no one)
confine   %s
requests  %d served by this worker process, this one included
`,
		pg.pid, ids.WithName(pg.uid), pg.gid,
		self["Uid"], self["NoNewPrivs"], self["CapEff"],
		pg.parent, realUID(parent["Uid"]), pg.parentRole(parent["Uid"]),
		pg.addr,
		pg.secretPath, pg.secretMode, pg.secretOwner,
		pg.direct,
		pg.secretLen, pg.secretSum,
		pg.confinementText(),
		n)
}

// parentRole says what the parent, with the given /proc status Uid field,
// is to this worker.
func (pg *page) parentRole(uidField string) string {
	if f := strings.Fields(uidField); len(f) > 0 && f[0] == strconv.FormatUint(uint64(pg.uid), 10) {
		return "the same user as this worker (without root, no privilege drop);\n" +
			"          it owns the policy, and answered this worker only after\n" +
			"          checking its pid, uid and gid with the kernel"
	}
	return "keeps its privileges and the policy; it answered this worker\n" +
		"          only after checking its pid, uid and gid with the kernel"
}

// procStatus reads /proc/PID/status (pid "self" for this process) into a map
// of its fields, with tabs turned into spaces; an unreadable file gives an
// empty map.
func procStatus(pid string) map[string]string {
	st := make(map[string]string)
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return st
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			st[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return st
}

// realUID formats the real UID of a /proc status "Uid" field, with its
// name; "?" when unknown.
func realUID(field string) string {
	f := strings.Fields(field)
	if len(f) == 0 {
		return "?"
	}
	n, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil {
		return "?"
	}
	return ids.WithName(uint32(n))
}

// confinementText is the confinement the parent verified, as it said.
func (pg *page) confinementText() string {
	if s, ok := pg.confinement.Load().(string); ok && s != "" {
		return s
	}
	return "unknown"
}
