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

func TestMain(m *testing.M) { testutil.Main(m) }

func TestCommandLine(t *testing.T) {
	bin := testutil.Build(t, ".", "whoami")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string // a substring of stderr
	}{
		{"-h", []string{"-h"}, 0, "-socket PATH"},
		{"an empty -socket", []string{"-socket", ""}, 2, "whoami: -socket is empty"},
		{"a -mode not octal", []string{"-mode", "rw"}, 2, `whoami: -mode "rw" is not an octal permission`},
		{"a -mode beyond the permissions", []string{"-mode", "01777"}, 2, `whoami: -mode "01777" is not an octal permission`},
		{"an unknown flag", []string{"-bogus"}, 2, "flag provided but not defined: -bogus"},
		{"an argument", []string{"extra"}, 2, `whoami: unexpected argument "extra"`},
		{"a socket in no directory", []string{"-socket", filepath.Join(t.TempDir(), "none", "s")}, 1, "whoami: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testutil.Command(t, testutil.Options{}, bin, tt.args...)
			p.Wait()
			if p.ExitCode() != tt.code || !strings.Contains(p.Stderr(), tt.stderr) {
				t.Errorf("whoami %q: exit status %d, want %d; stderr:\n%s\nwant %q in it", tt.args, p.ExitCode(), tt.code, p.Stderr(), tt.stderr)
			}
			if strings.Contains(p.Stderr(), "panic") {
				t.Errorf("whoami %q panicked:\n%s", tt.args, p.Stderr())
			}
		})
	}
}

func TestServe(t *testing.T) {
	bin := testutil.Build(t, ".", "whoami")
	me := fmt.Sprintf("pid=%d uid=%d", os.Getpid(), os.Geteuid())
	sockActivate := func(t *testing.T) string {
		const name = "systemd-socket-activate"
		if _, err := exec.LookPath(name); err != nil && os.Getenv("CI") == "" {
			t.Skipf("needs %s: apt-get install systemd", name)
		}
		return testutil.RequireCommand(t, name)
	}
	tests := []struct {
		name string
		// cmd returns the command line that serves sock
		cmd func(t *testing.T, sock string) []string
		// systemd: the socket file is systemd's, and stays
		systemd bool
	}{
		{"on -socket", func(t *testing.T, sock string) []string {
			return []string{bin, "-socket", sock}
		}, false},
		{"on the socket systemd passes", func(t *testing.T, sock string) []string {
			return []string{sockActivate(t), "-l", sock, bin}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "whoami.sock")
			cmd := tt.cmd(t, sock)
			p := testutil.Command(t, testutil.Options{Timeout: 30 * time.Second}, cmd[0], cmd[1:]...)
			// systemd-socket-activate binds the socket (the file
			// appears) before it listens.
			var c net.Conn
			testutil.WaitFor(t, "a connection to "+sock, 20*time.Second, func() bool {
				var err error
				c, err = net.Dial("unix", sock)
				return err == nil
			})
			defer c.Close()
			c.SetDeadline(time.Now().Add(30 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(line, me) {
				t.Fatalf("the client read %q, %v; want a line with %q\n%s", line, err, me, p.Stderr())
			}
			// stderr is read as it comes.
			testutil.WaitFor(t, "a log line naming the socket", 10*time.Second, func() bool {
				return strings.Contains(p.Stderr(), "socket="+sock)
			})
			if err := p.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			p.Wait()
			if p.ExitCode() != 0 {
				t.Errorf("stopped with SIGTERM: exit status %d, want 0\n%s", p.ExitCode(), p.Stderr())
			}
			if _, err := os.Lstat(sock); (err == nil) != tt.systemd {
				t.Errorf("after SIGTERM, the socket file: %v (systemd's socket: %v)", err, tt.systemd)
			}
		})
	}
}
