package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/peercred/peercred/internal/ratelog"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// roundtrip ADDR TEXT: connect to the Unix socket ADDR, send TEXT,
	// shut down writing, and print what comes back.
	testutil.Register("roundtrip", func(args []string) int {
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		defer c.Close()
		io.WriteString(c, args[1])
		c.(*net.UnixConn).CloseWrite()
		b, err := io.ReadAll(c)
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		os.Stdout.Write(b)
		return 0
	})
}

// TestPeercredAttacks runs the command against peers that try to flood
// its log or to write to the operator's terminal.
func TestPeercredAttacks(t *testing.T) {
	bin := build(t, "peercred")
	t.Run("echo rate-limits its refusal lines per uid", func(t *testing.T) { testEchoRefusalFlood(t, bin) })
	t.Run("serve and dial escape C1 bytes of an executable path", func(t *testing.T) { testExeEscaped(t, bin) })
}

func testEchoRefusalFlood(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	sock := filepath.Join(testutil.SocketDir(t), "echo.sock")
	srv := startCmd(t, testutil.Options{Timeout: 2 * time.Minute}, bin, "echo", sock) // admits root only
	waitSocket(t, srv, sock)

	const n = 1000
	start := time.Now()
	uids := []uint32{1234, 2345}
	var floods []*testutil.Proc
	for _, uid := range uids {
		floods = append(floods, testutil.ConnectFlood(t, sock, n, testutil.Options{
			As: &testutil.User{UID: uid, GID: uid}, Timeout: 2 * time.Minute,
		}))
	}
	for _, p := range floods {
		if line := p.Line(t); line != "done" {
			t.Fatalf("flood: %s", line)
		}
	}
	// Conns are accepted in order: once root's is served, every refused
	// one has been accepted too.
	p := testutil.Start(t, "roundtrip", testutil.Options{Args: []string{sock, "hello\n"}})
	if err := p.Wait(); err != nil || p.Stdout() != "hello\n" {
		t.Fatalf("root's client: %v, received %q", err, p.Stdout())
	}
	elapsed := time.Since(start)
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Fatalf("echo after SIGTERM: %v", err)
	}
	for _, uid := range uids {
		checkRateLimited(t, srv.Stderr(), fmt.Sprintf(`msg=refused pid=\d+ uid=%d `, uid), fmt.Sprintf("uid=%d", uid), n, elapsed)
	}
}

var droppedRE = regexp.MustCompile(`msg="refusals not logged".* dropped=(\d+)`)

// checkRateLimited checks in log that of n refusals, those whose lines
// match full were logged in full, within ratelog's default limits for a
// flood that lasted elapsed, and that the summary lines with summary in
// them count all the others.
func checkRateLimited(t *testing.T, log, full, summary string, n int, elapsed time.Duration) {
	t.Helper()
	fullRE := regexp.MustCompile(full)
	var logged, dropped, summaries int
	for line := range strings.Lines(log) {
		if fullRE.MatchString(line) {
			logged++
		}
		if m := droppedRE.FindStringSubmatch(line); m != nil && strings.Contains(line, " "+summary+" ") {
			d, _ := strconv.Atoi(m[1])
			dropped += d
			summaries++
		}
	}
	intervals := int(elapsed/ratelog.DefaultInterval) + 2
	if max := intervals * ratelog.DefaultBurst; logged > max || summaries > intervals {
		t.Errorf("%d of %d refusals (%s) logged in full, %d summaries, in %v; want at most %d lines in full and %d summaries",
			logged, n, summary, summaries, elapsed.Round(time.Millisecond), max, intervals)
	}
	if logged+dropped != n {
		t.Errorf("%d refusals (%s) logged in full and %d counted in summaries: %d in all, want %d",
			logged, summary, dropped, logged+dropped, n)
	}
}

// copyExe copies the executable src to dir/name, mode 0755.
func copyExe(t *testing.T, src, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, name)
	if err := os.WriteFile(dst, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return dst
}

// checkPrintable fails the test unless out is valid UTF-8 of printable
// runes and newlines, and contains every one of want.
func checkPrintable(t *testing.T, what, out string, want ...string) {
	t.Helper()
	for i, r := range out {
		if r == utf8.RuneError && !strings.HasPrefix(out[i:], "\ufffd") || r != '\n' && !unicode.IsPrint(r) {
			t.Errorf("%s: byte %d (%q) is not printable UTF-8 in %q", what, i, out[i:i+1], out)
			break
		}
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s: %q lacks %q", what, out, w)
		}
	}
}

// testExeEscaped: peers whose executables have C1 controls in their names
// (the 8-bit CSI 0x9b as a byte, and U+009B in UTF-8) connect to serve, and
// serve one that dial asks.
func testExeEscaped(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	dir := testutil.SocketDir(t)
	as := &testutil.User{UID: 1234, GID: 1234}
	names := []struct {
		name, escaped string
	}{
		{"pc\x9b31mA", `pc\x9b31mA`},       // the 8-bit CSI, invalid UTF-8
		{"pc\u009b31mB", `pc\u009b31mB`},   // CSI as a UTF-8 rune
		{"pc\xff\xfeC", `pc\xff\xfeC`},     // other invalid UTF-8
		{"pc\x1b]0;D\x07", `pc\x1b]0;D\a`}, // C0 controls
		{"pc\x7fE", `pc\x7fE`},             // DEL
	}
	// The clients are copies of the test binary under those names, run
	// through env(1) with the role marker.
	helper, env := testutil.HelperExec(t, "roundtrip")
	for _, json := range []bool{false, true} {
		t.Run(fmt.Sprintf("serve json=%v", json), func(t *testing.T) {
			sock := filepath.Join(dir, fmt.Sprintf("who-%v.sock", json))
			args := []string{"serve", sock}
			if json {
				args = []string{"serve", "-json", sock}
			}
			srv := startCmd(t, testutil.Options{}, bin, args...)
			waitSocket(t, srv, sock)
			for _, n := range names {
				exe := copyExe(t, helper, dir, n.name)
				client := testutil.Command(t, testutil.Options{As: as}, "env", append(env, exe, sock, "")...)
				if err := client.Wait(); err != nil {
					t.Fatal(err)
				}
				line := srv.Line(t)
				if json {
					if strings.ContainsAny(line, "\x7f\u0080\u009b\u009f") {
						t.Errorf("serve -json printed a C1 control or DEL: %q", line)
					}
					checkPrintable(t, "serve -json", line)
				} else {
					checkPrintable(t, "serve", line, n.escaped)
				}
				checkPrintable(t, "the line sent back", client.Stdout(), n.escaped)
			}
		})
	}
	t.Run("dial", func(t *testing.T) {
		exe := copyExe(t, bin, dir, names[0].name)
		sock := filepath.Join(dir, "served.sock")
		srv := startCmd(t, testutil.Options{As: as}, exe, "serve", sock)
		waitSocket(t, srv, sock)
		for _, json := range []bool{false, true} {
			args := []string{"dial", sock}
			if json {
				args = []string{"dial", "-json", sock}
			}
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, args...)
			if code != 0 {
				t.Fatalf("dial: exit code %d\n%s", code, stderr)
			}
			if json {
				checkPrintable(t, strings.Join(args, " "), stdout, `"exe":"`)
			} else {
				checkPrintable(t, strings.Join(args, " "), stdout, names[0].escaped)
			}
		}
	})
}
