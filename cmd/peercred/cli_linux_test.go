package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred/cmd/internal/version"
	"github.com/peercred/peercred/testutil"
)

// TestCommandLine runs the built command with good and bad command lines,
// as a user or a script would, and checks the exit status and where each
// message goes: what was asked for on stdout, errors on stderr, usage errors
// with status 2.
func TestCommandLine(t *testing.T) {
	bin := build(t, "peercred")
	wantVersion, err := version.OfFile("peercred", bin)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // a substring of stdout; "" wants it empty
		stderr string // a substring of stderr; "" wants it empty
	}{
		{"--version", []string{"--version"}, 0, wantVersion + "\n", ""},
		{"-version", []string{"-version"}, 0, wantVersion + "\n", ""},
		{"help", []string{"help"}, 0, "Usage: peercred COMMAND", ""},
		{"help serve", []string{"help", "serve"}, 0, "Usage: peercred serve [flags] SOCKET", ""},
		{"help dial", []string{"help", "dial"}, 0, "-expect-uid USER", ""},
		{"help echo", []string{"help", "echo"}, 0, "-allow-gid GROUP", ""},
		{"help of an unknown command", []string{"help", "nosuch"}, 2, "", `peercred help: unknown command "nosuch"`},
		{"help of two commands", []string{"help", "serve", "dial"}, 2, "", "want at most one COMMAND, got 2"},
		{"serve with an empty SOCKET", []string{"serve", ""}, 2, "", "peercred serve: the SOCKET argument is empty"},
		{"dial with an empty SOCKET", []string{"dial", ""}, 2, "", "peercred dial: the SOCKET argument is empty"},
		{"serve without SOCKET, not socket-activated", []string{"serve"}, 2, "", "want one SOCKET argument, got 0 (and systemd passed no socket)"},
		{"echo without SOCKET, not socket-activated", []string{"echo"}, 2, "", "want one SOCKET argument, got 0 (and systemd passed no socket)"},
		{"dial without SOCKET", []string{"dial"}, 2, "", "peercred dial: want one SOCKET argument, got 0"},
		{"two SOCKETs", []string{"serve", "/a", "/b"}, 2, "", "want one SOCKET argument, got 2"},
		{"dial -timeout 0", []string{"dial", "-timeout", "0", "/x"}, 2, "", "-timeout 0s: want a positive duration"},
		{"dial -timeout garbage", []string{"dial", "-timeout", "soon", "/x"}, 2, "", `invalid value "soon" for flag -timeout`},
		{"echo -allow-uid of no user", []string{"echo", "-allow-uid", "no-such-user", "/x"}, 2, "", `"no-such-user"`},
		{"serve -owner of no user", []string{"serve", "-owner", "no-such-user", filepath.Join(dir, "s")}, 2, "", "-owner: "},
		{"serve -group of no group", []string{"serve", "-group", "no-such-group", filepath.Join(dir, "s")}, 2, "", "-group: "},
		// The library's error, said once and plainly, exit status 1.
		{"serve on a directory", []string{"serve", dir}, 1, "", "peercred serve: "},
		{"serve in no directory", []string{"serve", filepath.Join(dir, "none", "s")}, 1, "", "peercred serve: "},
		{"dial a directory", []string{"dial", dir}, 1, "", "peercred dial: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, tt.args...)
			if code != tt.code {
				t.Errorf("peercred %q: exit status %d, want %d", tt.args, code, tt.code)
			}
			if tt.stdout == "" && stdout != "" || !strings.Contains(stdout, tt.stdout) {
				t.Errorf("peercred %q: stdout %q, want %q in it (or nothing)", tt.args, stdout, tt.stdout)
			}
			if tt.stderr == "" && stderr != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("peercred %q: stderr %q, want %q in it (or nothing)", tt.args, stderr, tt.stderr)
			}
			// A runtime error is one line; a usage error adds where to
			// find the usage.
			switch lines := strings.Count(stderr, "\n"); {
			case tt.code == 1 && lines != 1:
				t.Errorf("peercred %q: %d lines on stderr, want the error on one", tt.args, lines)
			case tt.code == 2 && !strings.Contains(stderr, "Run 'peercred"):
				t.Errorf("peercred %q: stderr does not say where the usage is", tt.args)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "s")); err == nil {
		t.Errorf("a usage error left a socket file behind")
	}
}
