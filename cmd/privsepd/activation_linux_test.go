package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred/testutil"
)

// unitFile is a systemd unit file: section, key, values in order.
type unitFile map[string]map[string][]string

// readUnit parses the unit file path: "[Section]" lines, "Key=Value" lines,
// comments (# and ;) and blank lines; anything else fails the test.
func readUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	s := bufio.NewScanner(f)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a section, a setting or a comment: %q", path, n, line)
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			u[section][k] = append(u[section][k], v)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// get returns the one value of key in section, or fails the test.
func (u unitFile) get(t *testing.T, section, key string) string {
	t.Helper()
	if v := u[section][key]; len(v) == 1 {
		return v[0]
	}
	t.Fatalf("[%s] %s: %q, want one value", section, key, u[section][key])
	return ""
}

// TestSystemdUnits checks that the example units in systemd/ give privsepd
// what it expects: a control socket at its default path as root, passed
// under the name it takes, open to every user (the Authorizer decides), and
// its default state directory.
func TestSystemdUnits(t *testing.T) {
	sock := readUnit(t, filepath.Join("systemd", "privsepd.socket"))
	svc := readUnit(t, filepath.Join("systemd", "privsepd.service"))
	got := map[string]string{
		"ListenStream":       sock.get(t, "Socket", "ListenStream"),
		"FileDescriptorName": sock.get(t, "Socket", "FileDescriptorName"),
		"SocketMode":         sock.get(t, "Socket", "SocketMode"),
		"state":              "/var/lib/" + svc.get(t, "Service", "StateDirectory"),
		"StateDirectoryMode": svc.get(t, "Service", "StateDirectoryMode"),
		"Requires":           svc.get(t, "Unit", "Requires"),
	}
	want := map[string]string{
		"ListenStream":       defaultControl(true),
		"FileDescriptorName": controlSocketName,
		"SocketMode":         "0666",
		"state":              defaultState(true),
		"StateDirectoryMode": "0700",
		"Requires":           "privsepd.socket",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("the units and privsepd's defaults differ (-privsepd +units):\n%s", diff)
	}
	// The service leaves the flags that the units decide at their
	// defaults, and passes only flags privsepd knows.
	exec := strings.Fields(svc.get(t, "Service", "ExecStart"))
	if len(exec) == 0 || filepath.Base(exec[0]) != "privsepd" {
		t.Fatalf("ExecStart=%q does not run privsepd", exec)
	}
	for _, arg := range exec[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if name == "control" || name == "state" {
			t.Errorf("ExecStart=%q sets -%s: leave it to the units", exec, name)
		}
	}
	if len(exec) > 1 {
		if _, code, ok := parseFlags(exec[1:], new(strings.Builder), new(strings.Builder)); !ok {
			t.Errorf("ExecStart=%q: privsepd refuses its flags (exit status %d)", exec, code)
		}
	}
}

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

// TestSocketActivation runs privsepd under systemd-socket-activate with the
// control socket of systemd/privsepd.socket (its name; another path), as the
// user the test runs as.
func TestSocketActivation(t *testing.T) {
	activate := requireSocketActivate(t)
	bin := build(t, "privsepd")
	name := readUnit(t, filepath.Join("systemd", "privsepd.socket")).get(t, "Socket", "FileDescriptorName")

	t.Run("the control socket named in the unit", func(t *testing.T) {
		dir := t.TempDir()
		ctl := filepath.Join(dir, "privsepd.sock")
		addr := freePort(t)
		d := startCmd(t, testutil.Options{Timeout: 30 * time.Second}, activate,
			"-l", ctl, "--fdname="+name, bin, "-http", addr, "-state", filepath.Join(dir, "state"))
		// systemd-socket-activate starts privsepd at the first
		// connection, which privsepd then serves; it binds the socket
		// (the file appears) before it listens.
		waitSocket(t, d, ctl)
		var code int
		var stdout, stderr string
		waitFor(t, "ctl status to reach the socket", 20*time.Second, func() bool {
			code, stdout, stderr = runCmd(t, testutil.Options{Timeout: 30 * time.Second}, bin, "ctl", "-control", ctl, "status")
			return !strings.Contains(stderr, "cannot reach the daemon")
		})
		if want := "control: " + ctl + "\n"; code != 0 || !strings.Contains(stdout, want) {
			t.Fatalf("ctl status: exit status %d, stdout:\n%s\nwant %q in it; stderr:\n%s\ndaemon log:\n%s", code, stdout, want, stderr, d.Stderr())
		}
		waitPage(t, d, addr)
		waitLog(t, &daemonProc{Proc: d}, fmt.Sprintf(`msg="privsepd starting" pid=%d`, d.PID()))
		waitLog(t, &daemonProc{Proc: d}, fmt.Sprintf(`msg="control socket listening" path=%s`, ctl), "passed_by=systemd")
		code, stdout, stderr = runCmd(t, testutil.Options{}, bin, "ctl", "-control", ctl, "stop")
		if code != 0 || stdout != "privsepd is stopping\n" {
			t.Errorf("ctl stop: exit status %d, stdout %q, stderr:\n%s", code, stdout, stderr)
		}
		d.Wait()
		if d.ExitCode() != 0 {
			t.Errorf("privsepd: exit status %d after ctl stop\n%s", d.ExitCode(), d.Stderr())
		}
		if _, err := os.Lstat(ctl); err != nil {
			t.Errorf("privsepd removed the socket file systemd made: %v", err)
		}
	})

	errs := []struct {
		name string
		args func(dir string) []string // systemd-socket-activate's
		msg  string                    // DIR: the sockets' directory
	}{
		{"a socket of another name", func(dir string) []string {
			return []string{"-l", filepath.Join(dir, "a.sock"), "--fdname=web", bin}
		}, "control socket: systemd passed sockets named web; privsepd takes one, named control (FileDescriptorName=control)"},
		{"two sockets", func(dir string) []string {
			return []string{"-l", filepath.Join(dir, "a.sock"), "-l", filepath.Join(dir, "b.sock"), "--fdname=control:http", bin}
		}, "control socket: systemd passed sockets named control, http; privsepd takes one, named control (FileDescriptorName=control)"},
		{"-control naming another socket", func(dir string) []string {
			return []string{"-l", filepath.Join(dir, "a.sock"), "--fdname=control", bin, "-control", filepath.Join(dir, "other.sock")}
		}, "control socket: systemd passed DIR/a.sock, not -control DIR/other.sock"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append(tt.args(dir), "-http", freePort(t), "-state", filepath.Join(dir, "state"))
			d := startCmd(t, testutil.Options{Timeout: 30 * time.Second}, activate, args...)
			sock := filepath.Join(dir, "a.sock")
			var c net.Conn
			waitFor(t, "a connection to "+sock, 20*time.Second, func() bool {
				var err error
				c, err = net.Dial("unix", sock)
				return err == nil
			})
			defer c.Close()
			d.Wait()
			if want := strings.ReplaceAll(tt.msg, "DIR", dir); d.ExitCode() != 1 || !strings.Contains(d.Stderr(), want) {
				t.Errorf("exit status %d, want 1; stderr:\n%s\nwant %q in it", d.ExitCode(), d.Stderr(), want)
			}
			if strings.Contains(d.Stderr(), "worker started") {
				t.Errorf("privsepd started its worker:\n%s", d.Stderr())
			}
		})
	}
}
