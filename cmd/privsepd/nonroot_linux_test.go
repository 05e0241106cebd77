package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/peercred/peercred/testutil"
)

// TestWithoutRootSaysWhatIsTrue runs privsepd as a user other than root
// (uid 1234 when the test is root, else the test's own user), with and
// without confinement, and checks that its warning says what the worker's
// page shows: confined, the worker cannot open the secret itself, though it
// runs as its owner; unconfined, it can.
func TestWithoutRootSaysWhatIsTrue(t *testing.T) {
	bin := build(t, "privsepd")
	var as *testutil.User // the test's own user
	if os.Geteuid() == 0 {
		as = &testutil.User{UID: 1234, GID: 1234}
	}
	tests := []struct {
		name  string
		flags []string
		warn  string // in the WARN line
		page  string // the page's line on the worker opening the secret
	}{
		{"confined", nil,
			"like the daemon: its confinement (Landlock) keeps it from opening the secret itself, but any other process of that user can",
			"the worker opening it itself: open STATE/secret: permission denied"},
		{"-confine=false", []string{"-confine=false"},
			"like the daemon, and with -confine=false it can read the secret itself",
			"the worker opening it itself: allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := startDaemon(t, bin, as, freePort(t), tt.flags...)
			page, err := get(d.addr)
			if err != nil {
				t.Fatal(err)
			}
			if want := strings.ReplaceAll(tt.page, "STATE", d.state); !strings.Contains(page, want) {
				t.Errorf("the page lacks %q:\n%s", want, page)
			}
			waitLog(t, d, "level=WARN", "not running as root", tt.warn)
			code, _, stderr := d.ctl(t, as, "stop")
			if code != 0 {
				t.Errorf("ctl stop: exit status %d\n%s", code, stderr)
			}
			d.stopped(t)
		})
	}
}

// TestDefaultStateWithoutRoot checks where privsepd keeps its state without
// root, as the README says: $XDG_STATE_HOME/privsepd, else
// ~/.local/state/privsepd, else (no home directory) /tmp/privsepd-UID.
func TestDefaultStateWithoutRoot(t *testing.T) {
	home := t.TempDir()
	fallback := "/tmp/privsepd-" + strconv.Itoa(os.Geteuid())
	tests := []struct {
		name, xdg, home, want string
	}{
		{"XDG_STATE_HOME", "/srv/state", home, "/srv/state/privsepd"},
		{"a relative XDG_STATE_HOME is ignored", "state", home, filepath.Join(home, ".local/state/privsepd")},
		{"HOME", "", home, filepath.Join(home, ".local/state/privsepd")},
		{"a HOME that does not exist", "", filepath.Join(home, "none"), fallback},
		{"no HOME", "", "", fallback},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_STATE_HOME", tt.xdg)
			t.Setenv("HOME", tt.home)
			if got := defaultState(false); got != tt.want {
				t.Errorf("defaultState(false) = %q, want %q", got, tt.want)
			}
		})
	}
}
