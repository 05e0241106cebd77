package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/testutil"
)

// TestPeercred runs the built command as a user would, with clients and
// servers under other UIDs.
func TestPeercred(t *testing.T) {
	bin := build(t, "peercred")
	t.Run("usage and exit codes", func(t *testing.T) { testUsage(t, bin) })
	t.Run("serve reports clients of other users", func(t *testing.T) { testServe(t, bin) })
	t.Run("serve gives the socket file its mode and owner", func(t *testing.T) { testSocketFile(t, bin) })
	t.Run("dial checks who serves", func(t *testing.T) { testDial(t, bin) })
	t.Run("an abstract socket", func(t *testing.T) { testAbstract(t, bin) })
	t.Run("echo admits allowed users only", func(t *testing.T) { testEcho(t, bin) })
}

func testUsage(t *testing.T, bin string) {
	tests := []struct {
		args       []string
		code       int
		stdout     string // a substring of stdout
		stderr     string // a substring of stderr
		noStdout   bool
		noStderror bool
	}{
		{args: []string{"-h"}, code: 0, stdout: "Exit status:", noStderror: true},
		{args: []string{}, code: 2, stderr: "Usage: peercred COMMAND", noStdout: true},
		{args: []string{"bogus"}, code: 2, stderr: `unknown command "bogus"`, noStdout: true},
		{args: []string{"serve"}, code: 2, stderr: "want one SOCKET argument, got 0", noStdout: true},
		{args: []string{"serve", "-h"}, code: 0, stdout: "Usage: peercred serve [flags] SOCKET", noStderror: true},
		{args: []string{"echo", "-h"}, code: 0, stdout: "-allow-gid GROUP", noStderror: true},
		{args: []string{"dial", "-bogus", "/x"}, code: 2, stderr: "flag provided but not defined: -bogus", noStdout: true},
		{args: []string{"dial", "-expect-uid", "no-such-user", "/x"}, code: 2, stderr: `user "no-such-user"`, noStdout: true},
		{args: []string{"serve", "-mode", "0600", "@peercred-test"}, code: 2, stderr: "is abstract", noStdout: true},
		{args: []string{"serve", "-mode", "999", "/x"}, code: 2, stderr: "not an octal permission", noStdout: true},
		{args: []string{"dial", "/nonexistent/peercred.sock"}, code: 1, stderr: "no such file or directory", noStdout: true},
		{args: []string{"serve", "/nonexistent/peercred.sock"}, code: 1, stderr: "peercred serve: ", noStdout: true},
	}
	for _, tt := range tests {
		name := strings.Join(tt.args, " ")
		if name == "" {
			name = "no arguments"
		}
		t.Run(name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tt.stdout) || tt.noStdout && stdout != "" {
				t.Errorf("stdout:\n%s\nwant it to contain %q (or be empty: %v)", stdout, tt.stdout, tt.noStdout)
			}
			if !strings.Contains(stderr, tt.stderr) || tt.noStderror && stderr != "" {
				t.Errorf("stderr:\n%s\nwant it to contain %q (or be empty: %v)", stderr, tt.stderr, tt.noStderror)
			}
		})
	}
}

func testServe(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	nc := testutil.RequireCommand(t, "nc")
	ncExe, err := filepath.EvalSymlinks(nc)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(testutil.SocketDir(t), "who.sock")
	srv := startCmd(t, testutil.Options{}, bin, "serve", "-json", sock)
	waitSocket(t, srv, sock)
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Perm() != 0o666 {
		t.Errorf("socket file: %v, %v; want mode 0666 (the default)", fi.Mode(), err)
	}

	for _, u := range []testutil.User{
		{UID: 1234, GID: 1234},
		{UID: 2345, GID: 3456, Groups: []uint32{4567, 5678}},
		{UID: 0, GID: 0},
	} {
		t.Run(fmt.Sprintf("uid %d gid %d groups %v", u.UID, u.GID, u.Groups), func(t *testing.T) {
			client := testutil.Command(t, testutil.Options{As: &u}, nc, "-U", sock)
			if err := client.Wait(); err != nil {
				t.Fatal(err)
			}
			groups := u.Groups
			if groups == nil {
				groups = []uint32{}
			}
			want := peer{PID: client.PID(), UID: u.UID, User: ids.UserName(u.UID), GID: u.GID, Groups: groups, Exe: ncExe}

			var got peer
			line := srv.Line(t)
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("serve -json printed %q: %v", line, err)
			}
			// What Cred.Attest read is checked in attest_linux_test.go.
			got.StartTime, got.Unit, got.Cgroup = 0, "", ""
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(peer{}, "Time")); diff != "" {
				t.Errorf("serve -json (-want +got):\n%s", diff)
			}
			if d := time.Since(got.Time); d < 0 || d > time.Minute {
				t.Errorf("time %v is not now", got.Time)
			}

			// The client is told the same, as a line of text.
			groupText := "-"
			if len(u.Groups) > 0 {
				groupText = ids.Join(u.Groups)
			}
			wantText := fmt.Sprintf(" pid=%d uid=%s gid=%d groups=%s exe=%s\n", client.PID(), ids.WithName(u.UID), u.GID, groupText, ncExe)
			gotText := client.Stdout()
			stamp, rest, _ := strings.Cut(gotText, " ")
			if " "+withoutAttest(t, rest) != wantText {
				t.Errorf("the client was told %q, want %q after the time", gotText, wantText)
			}
			if _, err := time.Parse(time.RFC3339, stamp); err != nil {
				t.Errorf("the line starts with %q: %v", stamp, err)
			}
		})
	}

	if err := srv.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGINT: %v, want exit status 0", err)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("socket file after SIGINT: %v, want it removed", err)
	}
}

func testSocketFile(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	tests := []struct {
		flags    []string
		mode     os.FileMode
		uid, gid uint32
	}{
		{nil, 0o666, 0, 0},
		{[]string{"-mode", "0600"}, 0o600, 0, 0},
		{[]string{"-mode", "0660", "-owner", "1234", "-group", "2345"}, 0o660, 1234, 2345},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.flags), func(t *testing.T) {
			sock := filepath.Join(testutil.SocketDir(t), "s.sock")
			srv := startCmd(t, testutil.Options{}, bin, append(append([]string{"serve"}, tt.flags...), sock)...)
			waitSocket(t, srv, sock)
			fi, err := os.Lstat(sock)
			if err != nil {
				t.Fatal(err)
			}
			st := fi.Sys().(*syscall.Stat_t)
			if fi.Mode() != os.ModeSocket|tt.mode || st.Uid != tt.uid || st.Gid != tt.gid {
				t.Errorf("socket file: mode %v uid %d gid %d, want %v uid %d gid %d",
					fi.Mode(), st.Uid, st.Gid, os.ModeSocket|tt.mode, tt.uid, tt.gid)
			}
			srv.Signal(syscall.SIGTERM)
			if err := srv.Wait(); err != nil {
				t.Errorf("serve after SIGTERM: %v", err)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file after SIGTERM: %v, want it removed", err)
			}
		})
	}
}

func testAbstract(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	name := fmt.Sprintf("@peercred-cmd-test-%d", os.Getpid())
	srv := startCmd(t, testutil.Options{As: &testutil.User{UID: 1234, GID: 1234}}, bin, "serve", name)
	var stdout string
	waitFor(t, "the abstract socket "+name, 10*time.Second, func() bool {
		var code int
		code, stdout, _ = runCmd(t, testutil.Options{As: &testutil.User{UID: 2345, GID: 2345}}, bin, "dial", "-expect-uid", "1234", name)
		return code == 0
	})
	if want := fmt.Sprintf("pid=%d uid=%s gid=1234 groups=- exe=?\n", srv.PID(), ids.WithName(1234)); withoutAttest(t, stdout) != want {
		t.Errorf("dial %s printed %q, want %q", name, stdout, want)
	}
	if line := srv.Line(t); !strings.Contains(line, " uid="+ids.WithName(2345)+" gid=2345 ") {
		t.Errorf("serve %s printed %q, want a client of uid 2345", name, line)
	}
}

func testDial(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	sock := filepath.Join(testutil.SocketDir(t), "served.sock")
	owner := &testutil.User{UID: 1234, GID: 1234}
	srv := startCmd(t, testutil.Options{As: owner}, bin, "serve", sock)
	waitSocket(t, srv, sock)
	served := fmt.Sprintf("pid=%d uid=%s gid=1234 groups=-", srv.PID(), ids.WithName(1234))

	tests := []struct {
		name   string
		as     *testutil.User
		args   []string
		code   int
		stdout string // exactly
		stderr string // a substring
	}{
		{"the expected uid passes", nil, []string{"-expect-uid", "1234"}, 0, served + " exe=" + bin + "\n", ""},
		{"another uid fails", nil, []string{"-expect-uid", "0"}, 1, "",
			fmt.Sprintf("is served by uid %s (pid %d), not uid %s", ids.WithName(1234), srv.PID(), ids.WithName(0))},
		{"json", nil, []string{"-json"}, 0,
			fmt.Sprintf(`{"pid":%d,"uid":1234,%s"gid":1234,"groups":[],"exe":%q}`+"\n", srv.PID(), userField(1234), bin), ""},
		{"the server's own user sees its executable", owner, []string{"-expect-uid", "1234"}, 0, served + " exe=" + bin + "\n", ""},
		{"another user does not", &testutil.User{UID: 2345, GID: 2345}, []string{"-expect-uid", "1234"}, 0, served + " exe=?\n", ""},
		{"another user is refused another uid", &testutil.User{UID: 2345, GID: 2345}, []string{"-expect-uid", "2345"}, 1, "",
			fmt.Sprintf("is served by uid %s (pid %d), not uid %s", ids.WithName(1234), srv.PID(), ids.WithName(2345))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{As: tt.as}, bin, append(append([]string{"dial"}, tt.args...), sock)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if diff := cmp.Diff(tt.stdout, withoutAttest(t, stdout)); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if !strings.Contains(stderr, tt.stderr) || tt.stderr == "" && stderr != "" {
				t.Errorf("stderr:\n%s\nwant %q", stderr, tt.stderr)
			}
		})
	}
}

// userField is the "user" member of peer's JSON for uid, if it has a name.
func userField(uid uint32) string {
	if name := ids.UserName(uid); name != "" {
		return fmt.Sprintf(`"user":%q,`, name)
	}
	return ""
}

func testEcho(t *testing.T, bin string) {
	testutil.RequireRoot(t)
	nc := testutil.RequireCommand(t, "nc")
	type client struct {
		as       testutil.User
		admitted bool
	}
	tests := []struct {
		name    string
		server  *testutil.User // nil: root
		flags   []string
		clients []client
	}{
		{
			name:   "by default the user who started it",
			server: &testutil.User{UID: 1234, GID: 1234},
			clients: []client{
				{testutil.User{UID: 1234, GID: 1234}, true},
				{testutil.User{UID: 2345, GID: 2345}, false},
				{testutil.User{UID: 0, GID: 0}, false},
			},
		},
		{
			name:  "the users and groups of -allow-uid and -allow-gid",
			flags: []string{"-allow-uid", "1234", "-allow-gid", "5000,5001"},
			clients: []client{
				{testutil.User{UID: 1234, GID: 1234}, true},
				{testutil.User{UID: 2345, GID: 2345, Groups: []uint32{5001}}, true}, // a supplementary group
				{testutil.User{UID: 3456, GID: 5000}, true},                         // the primary group
				{testutil.User{UID: 4567, GID: 4567}, false},
				{testutil.User{UID: 0, GID: 0}, false},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sock := filepath.Join(testutil.SocketDir(t), "echo.sock")
			srv := startCmd(t, testutil.Options{As: tt.server}, bin, append(append([]string{"echo"}, tt.flags...), sock)...)
			waitSocket(t, srv, sock)
			for _, c := range tt.clients {
				p := testutil.Command(t, testutil.Options{As: &c.as, Stdin: strings.NewReader("hello\nworld\n")}, nc, "-N", "-U", sock)
				if err := p.Wait(); err != nil {
					t.Errorf("client uid %d: %v", c.as.UID, err)
					continue
				}
				want := "hello\nworld\n"
				if !c.admitted {
					want = "Unauthorized access\n"
				}
				if got := p.Stdout(); got != want {
					t.Errorf("client uid %d gid %d groups %v received %q, want %q", c.as.UID, c.as.GID, c.as.Groups, got, want)
				}
				if !c.admitted {
					logged := fmt.Sprintf("msg=refused pid=%d uid=%d gid=%d ", p.PID(), c.as.UID, c.as.GID)
					waitFor(t, "log line "+logged, 5*time.Second, func() bool { return strings.Contains(srv.Stderr(), logged) })
				}
			}
			if err := srv.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			if err := srv.Wait(); err != nil {
				t.Errorf("echo after SIGTERM: %v, want exit status 0", err)
			}
			if _, err := os.Lstat(sock); !os.IsNotExist(err) {
				t.Errorf("socket file after SIGTERM: %v, want it removed", err)
			}
		})
	}
}
