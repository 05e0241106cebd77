package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/internal/ratelog"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// hold-control ADDR N: open N connections to the control socket ADDR
	// and send nothing on them; then, on one more, send "status" and print
	// "extra: ANSWER" (quoted); then wait until the daemon has closed the N
	// and print "closed N after SECONDS".
	testutil.Register("hold-control", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		start := time.Now()
		var held []net.Conn
		for range n {
			c, err := net.Dial("unix", args[0])
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			held = append(held, c)
		}
		// The daemon accepts in order: by the time it answers another
		// conn, the n are its own.
		time.Sleep(100 * time.Millisecond)
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		io.WriteString(c, "status\n")
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		answer, err := io.ReadAll(c) // EOF, or ECONNRESET: "status" was not read
		c.Close()
		if os.IsTimeout(err) {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Printf("extra: %q\n", answer)
		for _, c := range held {
			c.SetReadDeadline(time.Now().Add(60 * time.Second))
			if _, err := io.ReadAll(c); err != nil {
				fmt.Println("error:", err)
				return 1
			}
		}
		fmt.Printf("closed %d after %.0f\n", n, time.Since(start).Seconds())
		return 0
	})
	// hold-http ADDR N: open up to N HTTP/1.1 keep-alive connections to
	// ADDR, get the page once on each, and keep them open; stop early when a
	// request has no answer in 5s. Print "holding K of M" (K of the M still
	// open), then wait for stdin to end.
	testutil.Register("hold-http", func(args []string) int {
		n, _ := strconv.Atoi(args[1])
		lim := unix.Rlimit{Cur: uint64(n + 100), Max: uint64(n + 100)}
		var cur unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &cur) == nil && cur.Max > lim.Max {
			lim.Max = cur.Max
		}
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Println("error: setrlimit:", err)
			return 1
		}
		var conns []net.Conn
		for range n {
			c, err := net.Dial("tcp", args[0])
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "GET / HTTP/1.1\r\nHost: privsepd\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			c.SetDeadline(time.Time{})
			if os.IsTimeout(err) {
				break // the server takes no more: hold what we have
			}
		}
		// Count those still open: a closed one reads EOF at once.
		open := 0
		for _, c := range conns {
			c.SetReadDeadline(time.Now().Add(time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); os.IsTimeout(err) {
				open++
			}
		}
		fmt.Println("holding", open, "of", len(conns))
		io.Copy(io.Discard, os.Stdin)
		return 0
	})
}

// TestPrivsepdAttacks runs the daemon against local users who try to read
// the secret, to hold its web worker down, and to flood its log.
func TestPrivsepdAttacks(t *testing.T) {
	bin := build(t, "privsepd")
	t.Run("the secret is shown as a digest only", func(t *testing.T) { testSecretDigest(t, bin) })
	t.Run("idle connections of one user do not keep others out", func(t *testing.T) { testIdleHTTP(t, bin) })
	t.Run("the control socket's per-user cap and deadline", func(t *testing.T) { testControlLimits(t, bin) })
	t.Run("refusals on the control socket are rate-limited", func(t *testing.T) { testControlFlood(t, bin) })
}

// startDaemonSecret starts privsepd as root, like startDaemon, with a
// state directory that already holds the secret file with content secret.
func startDaemonSecret(t *testing.T, bin, addr string, secret []byte, flags ...string) *daemonProc {
	t.Helper()
	dir := testutil.SocketDir(t)
	d := &daemonProc{bin: bin, control: filepath.Join(dir, "privsepd.sock"), addr: addr, state: filepath.Join(dir, "state")}
	if err := os.Mkdir(d.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d.state, "secret"), secret, 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-http", addr, "-state", d.state, "-control", d.control}, flags...)
	d.Proc = startCmd(t, testutil.Options{Timeout: 2 * time.Minute}, bin, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.Stderr())
		}
	})
	waitPage(t, d.Proc, addr)
	return d
}

// fetch gets path from addr with method, and returns the status and body.
func fetch(method, addr, path string) (string, error) {
	req, err := http.NewRequest(method, "http://"+addr+path, nil)
	if err != nil {
		return "", err
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.Status + "\n" + string(b), err
}

func testSecretDigest(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := []byte(hex.EncodeToString(raw) + "\n")
	sum := sha256.Sum256(secret)
	addr := freePrivilegedPort(t)
	d := startDaemonSecret(t, bin, addr, secret, "-v", "-allow-uid", "1234")

	var outputs []string
	for _, path := range []string{"/", "/status", "/secret", "/debug/vars", "/debug/pprof/", "/state/secret",
		"/..%2fsecret", "/?secret=1", "//", "/favicon.ico"} {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			out, err := fetch(method, addr, path)
			if err != nil {
				t.Errorf("%s %s: %v", method, path, err)
			}
			outputs = append(outputs, method+" "+path+": "+out)
		}
	}
	page, err := get(addr)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`through the parent ("open" call): %d bytes, SHA-256 %x`, len(secret), sum)
	if !strings.Contains(page, want) {
		t.Errorf("page lacks %q:\n%s", want, page)
	}
	for _, as := range []*testutil.User{nil, {UID: 1234, GID: 1234}} {
		_, status := d.status(t, as)
		outputs = append(outputs, "ctl status: "+status)
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	outputs = append(outputs, "daemon log: "+d.Stderr())

	hexSecret := strings.TrimSpace(string(secret))
	for _, out := range outputs {
		for _, leak := range []string{hexSecret, hexSecret[:16], hexSecret[len(hexSecret)-16:]} {
			if strings.Contains(out, leak) {
				t.Errorf("the secret (%q) is in the output of %s", leak, out)
			}
		}
	}
}

func testIdleHTTP(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr)
	pid, _ := d.status(t, nil)
	t.Logf("worker pid %d: %s", pid, procField(t, pid, "Uid"))

	// uid 1234 holds a thousand idle keep-alive connections and more: as
	// many as the web worker's descriptor limit (1024) lets it.
	stdin, hold := io.Pipe()
	t.Cleanup(func() { hold.Close() })
	holder := testutil.Start(t, "hold-http", testutil.Options{
		As: &testutil.User{UID: 1234, GID: 1234}, Args: []string{addr, "1100"}, Stdin: stdin, Timeout: 3 * time.Minute,
	})
	line := holder.Line(t)
	t.Logf("uid 1234: %s", line)

	// Fresh requests from another user, one after another, each answered
	// within 2s (a generous bound: the page takes milliseconds).
	served := 0
	for i := range 10 {
		c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			t.Errorf("request %d: %v", i, err)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "privsepd: hello") {
			t.Errorf("request %d: %s, %v:\n%s", i, resp.Status, err, b)
			continue
		}
		served++
	}
	if served != 10 {
		t.Errorf("%d of 10 requests served within 2s while uid 1234 holds idle connections (%s)", served, line)
	}
	hold.Close()
	holder.Wait()
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.stopped(t, pid)
}

var closedRE = regexp.MustCompile(`^closed (\d+) after (\d+)$`)

func testControlLimits(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr, "-allow-uid", "1234,2345")
	holder := testutil.Start(t, "hold-control", testutil.Options{
		As: &testutil.User{UID: 1234, GID: 1234}, Args: []string{d.control, strconv.Itoa(maxControlConnsPerUID)}, Timeout: 2 * time.Minute,
	})
	if line := holder.Line(t); line != `extra: ""` {
		t.Errorf("uid 1234's connection beyond its %d: %s, want it closed without an answer", maxControlConnsPerUID, line)
	}
	// Another user is served meanwhile.
	var wg sync.WaitGroup
	for _, as := range []*testutil.User{nil, {UID: 2345, GID: 2345}} {
		wg.Go(func() { d.status(t, as) })
	}
	wg.Wait()
	// The silent connections are closed by the deadline (2s), not held.
	line := holder.Line(t)
	m := closedRE.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("uid 1234's silent connections: %s", line)
	}
	if secs, _ := strconv.Atoi(m[2]); secs > 30 {
		t.Errorf("uid 1234's silent connections closed after %ds, want about 2s", secs)
	}
	waitLog(t, d, `msg="control: too many connections from one user"`, "uid=1234")
	waitLog(t, d, `msg="control: no command"`, "uid=1234", "i/o timeout")
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.Wait()
}

func testControlFlood(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr, "-allow-uid", "1234")
	const n = 1000
	start := time.Now()
	var floods []*testutil.Proc
	for _, uid := range []uint32{1234, 3456} { // allowed, refused
		floods = append(floods, testutil.ConnectFlood(t, d.control, n, testutil.Options{
			As: &testutil.User{UID: uid, GID: uid}, Timeout: 2 * time.Minute,
		}))
	}
	for _, p := range floods {
		if line := p.Line(t); line != "done" {
			t.Fatalf("flood: %s", line)
		}
	}
	d.status(t, nil) // accepted after all the others
	elapsed := time.Since(start)
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.Wait()
	log := d.Stderr()
	checkRateLimited(t, log, `msg="peercred: peer refused" .* uid=3456\b`,
		`msg="peercred: refusals not logged" .* uid=3456 .*dropped=(\d+)`, n, elapsed)
	checkRateLimited(t, log, `msg="control: (too many connections from one user|no command)" .* uid=1234\b`,
		`msg="control: warnings not logged" uid=1234 .*dropped=(\d+)`, n, elapsed)
}

// checkRateLimited checks in log that of n events, those whose lines match
// full were logged in full, within ratelog's default limits for a flood that
// lasted elapsed, and that the lines matching summary count the others (its
// first submatch).
func checkRateLimited(t *testing.T, log, full, summary string, n int, elapsed time.Duration) {
	t.Helper()
	fullRE, summaryRE := regexp.MustCompile(full), regexp.MustCompile(summary)
	var logged, dropped, summaries int
	for line := range strings.Lines(log) {
		if fullRE.MatchString(line) {
			logged++
		}
		if m := summaryRE.FindStringSubmatch(line); m != nil {
			d, _ := strconv.Atoi(m[1])
			dropped += d
			summaries++
		}
	}
	intervals := int(elapsed/ratelog.DefaultInterval) + 2
	if max := intervals * ratelog.DefaultBurst; logged > max || summaries > intervals {
		t.Errorf("%d of %d events (%s) logged in full, %d summaries, in %v; want at most %d lines in full and %d summaries",
			logged, n, full, summaries, elapsed.Round(time.Millisecond), max, intervals)
	}
	if logged+dropped != n {
		t.Errorf("%d events (%s) logged in full and %d counted in summaries: %d in all, want %d",
			logged, full, dropped, logged+dropped, n)
	}
}
