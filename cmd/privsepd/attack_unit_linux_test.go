package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// ctl-when-told SOCKET [JOIN]: with JOIN, a cgroup directory, try to
	// move itself into that cgroup and print "join: ok" or the error;
	// then wait for a line on stdin (the test moves it into a cgroup
	// meanwhile), ask the control socket SOCKET for "status" and print
	// the answer, quoted, as `answer: "..."`.
	testutil.Register("ctl-when-told", func(args []string) int {
		if len(args) > 1 {
			err := os.WriteFile(filepath.Join(args[1], "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0)
			if err != nil {
				fmt.Println("join:", err)
			} else {
				fmt.Println("join: ok")
			}
		}
		fmt.Println("waiting")
		if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
			fmt.Println("stdin:", err)
			return 1
		}
		c, err := net.Dial("unix", args[0])
		if err != nil {
			fmt.Println("dial:", err)
			return 1
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		io.WriteString(c, "status\n") // fails, or not, when refused: the answer says
		b, err := io.ReadAll(io.LimitReader(c, 64<<10))
		if err != nil && !errors.Is(err, syscall.ECONNRESET) {
			fmt.Println("read:", err)
			return 1
		}
		fmt.Printf("answer: %q\n", b)
		return 0
	})
}

// TestControlUnitAttack: with -control-unit, the control socket admits a
// process of the named systemd unit whatever its UID, and refuses a
// process of the same UID in another cgroup (another unit, no unit, or a
// user's unit of the same name), which also cannot move itself into the
// unit's cgroup; the refusal is logged naming the peer's unit and cgroup
// and the allowed unit.
func TestControlUnitAttack(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "privsepd")
	svc := fmt.Sprintf("app-test-%d.service", os.Getpid())
	other := fmt.Sprintf("other-test-%d.service", os.Getpid())
	unitCgroup := "/system.slice/" + svc
	unitDir := testutil.MakeCgroup(t, unitCgroup)
	addr := freePrivilegedPort(t)
	d := startDaemon(t, bin, nil, addr, "-control-unit", "backup.service,"+svc)
	waitLog(t, d, `msg="control socket listening"`, "allow_units=backup.service,"+svc)
	user := &testutil.User{UID: 1234, GID: 1234}
	ownCgroup := testutil.CgroupOf(t, os.Getpid())

	tests := []struct {
		name   string
		cgroup string // "": the test's own
		join   bool   // first tries to move itself into the unit
		admit  bool
		unit   string // the unit the refusal names
	}{
		{name: "a process of the unit is admitted", cgroup: unitCgroup, admit: true},
		{name: "a process beneath the unit is admitted", cgroup: unitCgroup + "/sub", admit: true},
		{name: "the same uid in another unit is refused", cgroup: "/system.slice/" + other, unit: other},
		{name: "the same uid in no unit is refused", cgroup: "", unit: unitOf(ownCgroup)},
		{name: "the same uid in its own user unit of that name is refused",
			cgroup: "/user.slice/user-1234.slice/user@1234.service/app.slice/" + svc, unit: "user@1234.service"},
		{name: "the same uid cannot move itself into the unit", cgroup: "/system.slice/" + other, join: true, unit: other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			join := ""
			if tt.join {
				join = unitDir
			}
			cgroup := ownCgroup
			if tt.cgroup != "" {
				cgroup = tt.cgroup
			}
			p, line := askStatusIn(t, d, user, tt.cgroup, join)
			if tt.admit {
				if !strings.HasPrefix(line, `answer: "ok\n`) || !strings.Contains(line, "uid 1234") {
					t.Errorf("peer of %s: %s, want the status", svc, line)
				}
				waitLog(t, d, `msg="control command" cmd=status pid=`+strconv.Itoa(p.PID())+" uid=1234")
				return
			}
			if line != `answer: ""` {
				t.Errorf("peer in cgroup %q: %s, want the connection closed without an answer", cgroup, line)
			}
			// The refusal names the peer's unit and cgroup, and the units allowed.
			// (slog quotes the reason: its quotes are escaped.)
			waitLog(t, d, `msg="peercred: peer refused"`, "pid="+strconv.Itoa(p.PID())+" ", "uid=1234",
				"unit is "+tt.unit+" ", "(cgroup "+inQuotes(strconv.Quote(cgroup)),
				"not in the allowed list "+inQuotes(fmt.Sprintf("%q", []string{"backup.service", svc})))
		})
	}
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.stopped(t)
}

// askStatusIn starts a process as user, which (with join) first tries to
// move itself into the cgroup directory join, moves it into the cgroup v2
// path cgroup ("": it stays in the test's), and has it ask d's control
// socket for "status". It returns the process and what it printed.
func askStatusIn(t *testing.T, d *daemonProc, user *testutil.User, cgroup, join string) (*testutil.Proc, string) {
	t.Helper()
	args := []string{d.control}
	if join != "" {
		args = append(args, join)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	p := testutil.Start(t, "ctl-when-told", testutil.Options{As: user, Args: args, Stdin: pr, Timeout: time.Minute})
	if join != "" {
		if line := p.Line(t); line == "join: ok" {
			t.Fatalf("uid %d moved itself into %s", user.UID, join)
		} else {
			t.Log(line)
		}
	}
	if line := p.Line(t); line != "waiting" {
		t.Fatalf("peer said %q", line)
	}
	want := testutil.CgroupOf(t, os.Getpid())
	if cgroup != "" {
		want = cgroup
		testutil.MoveToCgroup(t, testutil.MakeCgroup(t, cgroup), p.PID())
	}
	if got := testutil.CgroupOf(t, p.PID()); got != want {
		t.Fatalf("peer in cgroup %q, want %q", got, want)
	}
	io.WriteString(pw, "go\n")
	return p, p.Line(t)
}

// TestControlUnitWithoutRoot: a daemon without root cannot read another
// user's process, so -control-unit refuses it even in the unit, saying
// why; the daemon warns of it at start.
func TestControlUnitWithoutRoot(t *testing.T) {
	testutil.RequireRoot(t) // to run the daemon and the caller as other users
	bin := build(t, "privsepd")
	svc := fmt.Sprintf("app-test-%d.service", os.Getpid())
	cgroup := "/system.slice/" + svc
	testutil.MakeCgroup(t, cgroup)
	d := startDaemon(t, bin, &testutil.User{UID: 1234, GID: 1234}, freePort(t), "-control-unit", svc)
	waitLog(t, d, `msg="not running as root: -control-unit can read, and so admit, only the processes of uid 1234"`)
	p, line := askStatusIn(t, d, &testutil.User{UID: 2345, GID: 2345}, cgroup, "")
	if line != `answer: ""` {
		t.Errorf("uid 2345 in %s: %s, want the connection closed without an answer", svc, line)
	}
	waitLog(t, d, `msg="peercred: peer refused"`, "pid="+strconv.Itoa(p.PID())+" ", "uid=2345",
		fmt.Sprintf("pid %d: systemd unit unknown: peercred: attest pid %[1]d: ", p.PID()), "permission denied")
	if err := d.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	d.stopped(t)
}

// TestControlUnitUsage: -control-unit takes systemd unit names that can
// hold processes, and nothing else.
func TestControlUnitUsage(t *testing.T) {
	bin := build(t, "privsepd")
	tests := []struct {
		value  string
		stderr string
	}{
		{"", `-control-unit: empty unit name in ""`},
		{"a.service,", `empty unit name in "a.service,"`},
		{"backup", `"backup" is not a systemd unit name`},
		{"system.slice", `"system.slice" is not a systemd unit name`},
		{"/system.slice/a.service", `"/system.slice/a.service" is not a systemd unit name`},
		{"a b.service", `"a b.service" is not a systemd unit name`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{}, bin, "-control-unit", tt.value)
			if code != exitUsage || stdout != "" || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit code %d, want %d; stdout %q; stderr (want %q in it):\n%s", code, exitUsage, stdout, tt.stderr, stderr)
			}
		})
	}
	code, stdout, _ := runCmd(t, testutil.Options{}, bin, "-h")
	if code != 0 || !strings.Contains(stdout, "-control-unit UNIT") {
		t.Errorf("-h: exit code %d, no -control-unit UNIT in:\n%s", code, stdout)
	}
}

// The cgroup helpers below do what the root package's attest tests do.

// unitOf is what a refusal calls the unit of cgroup.
func unitOf(cgroup string) string {
	if unit, _, _, _ := peercred.SystemdUnit(cgroup); unit != "" {
		return unit
	}
	return "none"
}

// inQuotes is s as it reads inside a quoted value of a slog text line.
func inQuotes(s string) string {
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
}
