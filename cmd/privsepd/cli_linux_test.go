package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred/cmd/internal/version"
	"github.com/peercred/peercred/testutil"
)

// TestCommandLine runs the built daemon and its client with good and bad
// command lines, and checks the exit status and the messages: a bad flag
// value is a usage error (status 2, and where to find the usage), found
// before the daemon starts anything.
func TestCommandLine(t *testing.T) {
	bin := build(t, "privsepd")
	wantVersion, err := version.OfFile("privsepd", bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctl := filepath.Join(dir, "c.sock")
	// A daemon that got past its flags would make these.
	common := []string{"-state", filepath.Join(dir, "state"), "-control", ctl}
	notMe := "only root can run the worker as another user"
	if os.Geteuid() == 0 {
		notMe = "refusing to run the worker as root"
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout; "" wants it empty
		stderr string // a substring of stderr; "" wants it empty
	}{
		{"--version", []string{"--version"}, 0, wantVersion + "\n", ""},
		{"-version", []string{"-version"}, 0, wantVersion + "\n", ""},
		{"-h lists -version", []string{"-h"}, 0, "-version", ""},
		{"-http without a port", append([]string{"-http", "garbage"}, common...), 2, "", `privsepd: -http "garbage": want HOST:PORT`},
		{"-http with port 0", append([]string{"-http", "127.0.0.1:0"}, common...), 2, "", `"0" is not a port number from 1 to 65535`},
		{"-http with a port too large", append([]string{"-http", "127.0.0.1:65536"}, common...), 2, "", `"65536" is not a port number`},
		{"-http with a named port", append([]string{"-http", "127.0.0.1:http"}, common...), 2, "", `"http" is not a port number`},
		{"-user of no user", append([]string{"-user", "no-such-user"}, common...), 2, "", `privsepd: -user: user "no-such-user"`},
		{"-user root", append([]string{"-user", "root"}, common...), 2, "", notMe},
		{"an empty -control", []string{"-control", ""}, 2, "", "privsepd: -control is empty"},
		{"an empty -state", []string{"-state", ""}, 2, "", "privsepd: -state is empty"},
		{"-allow-uid of no user", []string{"-allow-uid", "no-such-user"}, 2, "", `"no-such-user"`},
		{"-allow-gid of no group", []string{"-allow-gid", "no-such-group"}, 2, "", `"no-such-group"`},
		{"-admin-uid of no user", []string{"-admin-uid", "no-such-user"}, 2, "", `"no-such-user"`},
		{"-confine not a boolean", []string{"-confine=maybe"}, 2, "", `invalid boolean value "maybe" for -confine`},
		{"ctl with an empty -control", []string{"ctl", "-control", "", "status"}, 2, "", "privsepd ctl: -control is empty"},
		{"ctl -timeout 0", []string{"ctl", "-timeout", "0", "status"}, 2, "", "privsepd ctl: -timeout 0s: want a positive duration"},
		{"ctl -timeout garbage", []string{"ctl", "-timeout", "soon", "status"}, 2, "", `invalid value "soon" for flag -timeout`},
		{"ctl with two commands", []string{"ctl", "status", "stop"}, 2, "", "want one COMMAND, got 2"},
		{"ctl -version", []string{"ctl", "-version", "status"}, 2, "", "flag provided but not defined: -version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, tt.args...)
			if code != tt.code {
				t.Errorf("privsepd %q: exit status %d, want %d", tt.args, code, tt.code)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("privsepd %q: stdout %q, want %q in it (or nothing)", tt.args, stdout, tt.stdout)
			}
			if tt.stderr == "" && stderr != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("privsepd %q: stderr %q, want %q in it (or nothing)", tt.args, stderr, tt.stderr)
			}
			if tt.code == 2 && !strings.Contains(stderr, "Run 'privsepd") {
				t.Errorf("privsepd %q: stderr does not say where the usage is", tt.args)
			}
		})
	}
	for _, p := range []string{ctl, filepath.Join(dir, "state")} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("a usage error left %s behind", p)
		}
	}
}
