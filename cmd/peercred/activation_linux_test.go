package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred/testutil"
)

// requireSocketActivate returns the path of systemd-socket-activate, which
// passes listening sockets to a program as systemd does, or skips the test
// (fails it in CI) when it is missing.
func requireSocketActivate(t *testing.T) string {
	t.Helper()
	const name = "systemd-socket-activate"
	if _, err := exec.LookPath(name); err != nil && os.Getenv("CI") == "" {
		t.Skipf("needs %s: apt-get install systemd", name)
	}
	return testutil.RequireCommand(t, name)
}

// activate starts bin with args under systemd-socket-activate listening on
// each of socks, and connects to the first once it is there:
// systemd-socket-activate starts the program at the first connection. It
// returns the process (the program, once started) and the connection.
func activate(t *testing.T, socks []string, bin string, args ...string) (*testutil.Proc, net.Conn) {
	t.Helper()
	var sa []string
	for _, s := range socks {
		sa = append(sa, "-l", s)
	}
	p := startCmd(t, testutil.Options{Timeout: 30 * time.Second}, requireSocketActivate(t), append(append(sa, bin), args...)...)
	c := dialPassed(t, socks[0])
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return p, c
}

// dialPassed connects to the socket sock of systemd-socket-activate,
// which binds it (the file appears) before it listens.
func dialPassed(t *testing.T, sock string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	waitFor(t, "a connection to "+sock, 20*time.Second, func() bool {
		c, err = net.Dial("unix", sock)
		return err == nil
	})
	return c
}

// TestSocketActivation starts serve and echo as systemd would, with the
// socket passed to them, as systemd-socket-activate passes it.
func TestSocketActivation(t *testing.T) {
	requireSocketActivate(t)
	bin := build(t, "peercred")
	me := fmt.Sprintf("pid=%d uid=%d", os.Getpid(), os.Geteuid())

	t.Run("serve takes the passed socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "who.sock")
		p, c := activate(t, []string{sock}, bin, "serve")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || !strings.Contains(line, me) {
			t.Fatalf("the client read %q, %v; want a line with %q\n%s", line, err, me, p.Stderr())
		}
		if got := p.Line(t); got != strings.TrimSuffix(line, "\n") {
			t.Errorf("serve printed %q, told the client %q", got, line)
		}
		// stderr is read as it comes.
		waitFor(t, "a log line naming the socket", 10*time.Second, func() bool {
			return strings.Contains(p.Stderr(), "socket="+sock)
		})
		stop(t, p)
		if _, err := os.Lstat(sock); err != nil {
			t.Errorf("serve removed the socket file systemd made: %v", err)
		}
	})
	t.Run("serve with SOCKET naming the passed socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "who.sock")
		p, c := activate(t, []string{sock}, bin, "serve", sock)
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, me) {
			t.Fatalf("the client read %q, %v; want a line with %q\n%s", line, err, me, p.Stderr())
		}
		stop(t, p)
	})
	t.Run("echo takes the passed socket", func(t *testing.T) {
		sock := filepath.Join(t.TempDir(), "echo.sock")
		p, c := activate(t, []string{sock}, bin, "echo")
		fmt.Fprintln(c, "hello")
		if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || line != "hello\n" {
			t.Fatalf("echo answered %q, %v; want %q\n%s", line, err, "hello\n", p.Stderr())
		}
		stop(t, p)
	})

	errs := []struct {
		name  string
		socks []string
		args  []string
		code  int
		msg   string
	}{
		{"SOCKET naming another socket", []string{"a.sock"}, []string{"serve", "/elsewhere.sock"}, 1,
			"peercred serve: systemd passed the socket %[1]s/a.sock, not /elsewhere.sock"},
		{"-mode for a passed socket", []string{"a.sock"}, []string{"echo", "-mode", "0600"}, 2,
			"peercred echo: -mode, -owner and -group do not apply to the socket systemd passed (%[1]s/a.sock)"},
		{"two sockets passed", []string{"a.sock", "b.sock"}, []string{"serve"}, 1,
			"peercred serve: systemd passed 2 sockets (%[1]s/a.sock, %[1]s/b.sock); peercred serves one"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var socks []string
			for _, s := range tt.socks {
				socks = append(socks, filepath.Join(dir, s))
			}
			p, c := activate(t, socks, bin, tt.args...)
			// The server exits without answering.
			if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
				t.Errorf("the client read %d bytes, %v; want the connection closed", n, err)
			}
			p.Wait()
			if want := fmt.Sprintf(tt.msg, dir); p.ExitCode() != tt.code || !strings.Contains(p.Stderr(), want) {
				t.Errorf("exit status %d, want %d; stderr:\n%s\nwant %q in it", p.ExitCode(), tt.code, p.Stderr(), want)
			}
		})
	}
}

// stop stops the server p with SIGTERM and checks that it exits with status 0.
func stop(t *testing.T, p *testutil.Proc) {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p.Wait()
	if p.ExitCode() != 0 {
		t.Errorf("stopped with SIGTERM: exit status %d, want 0\n%s", p.ExitCode(), p.Stderr())
	}
}
