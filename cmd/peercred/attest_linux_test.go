package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
	"github.com/peercred/peercred/cmd/internal/printable"
	"github.com/peercred/peercred/testutil"
)

func init() {
	// connect-when-told SOCKET: print "waiting", wait for a line on
	// stdin (the test moves it into a cgroup meanwhile), connect to
	// SOCKET and print what the server sends, quoted.
	testutil.Register("connect-when-told", func(args []string) int {
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
		b, err := io.ReadAll(io.LimitReader(c, 64<<10))
		if err != nil {
			fmt.Println("read:", err)
			return 1
		}
		fmt.Printf("%q\n", b)
		return 0
	})
}

// TestServeShowsUnit: serve prints the systemd unit, user unit, cgroup,
// executable and start time of a client that the test moved into a cgroup,
// as JSON (-json) and, to the client, as text, with a cgroup name that
// holds a space and a terminal escape quoted.
func TestServeShowsUnit(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "peercred")
	helper, _ := testutil.HelperExec(t, "connect-when-told")
	svc := fmt.Sprintf("app-test-%d.service", os.Getpid())
	own := testutil.CgroupOf(t, os.Getpid())
	ownUnit, _, _, _ := peercred.SystemdUnit(own)
	user := &testutil.User{UID: 1234, GID: 1234}
	sock := filepath.Join(testutil.SocketDir(t), "who.sock")
	srv := startCmd(t, testutil.Options{}, bin, "serve", "-json", sock)
	waitSocket(t, srv, sock)

	tests := []struct {
		name             string
		cgroup           string // "": the test's own
		unit, userUnit   string
		cgroupText       string // as the text line shows it
		unitText         string // "-" for none
		wantUserUnitText bool
	}{
		{name: "a system unit", cgroup: "/system.slice/" + svc, unit: svc},
		{name: "a user's unit", cgroup: "/user.slice/user-1234.slice/user@1234.service/app.slice/" + svc,
			unit: "user@1234.service", userUnit: svc},
		{name: "a cgroup named with a space and an escape", cgroup: "/system.slice/" + svc + "/a b\x1b[31m\x9b",
			unit: svc, cgroupText: strconv.Quote("/system.slice/" + svc + "/a b\x1b[31m\x9b")},
		{name: "the test's own cgroup", unit: ownUnit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pr, pw, err := os.Pipe()
			if err != nil {
				t.Fatal(err)
			}
			defer pr.Close()
			defer pw.Close()
			p := testutil.Start(t, "connect-when-told", testutil.Options{As: user, Args: []string{sock}, Stdin: pr})
			if line := p.Line(t); line != "waiting" {
				t.Fatalf("client said %q", line)
			}
			cgroup := own
			if tt.cgroup != "" {
				cgroup = tt.cgroup
				testutil.MoveToCgroup(t, testutil.MakeCgroup(t, tt.cgroup), p.PID())
			}
			start := startTimeOf(t, p.PID())
			io.WriteString(pw, "go\n")

			want := peer{PID: p.PID(), UID: user.UID, User: ids.UserName(user.UID), GID: user.GID, Groups: []uint32{},
				Exe: helper, StartTime: start, Unit: tt.unit, UserUnit: tt.userUnit,
				Cgroup: strings.ToValidUTF8(cgroup, "\ufffd")} // as encoding/json writes it
			var got peer
			line := srv.Line(t)
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("serve -json printed %q: %v", line, err)
			}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(peer{}, "Time")); diff != "" {
				t.Errorf("serve -json (-want +got):\n%s", diff)
			}
			if !printable.Is(line) {
				t.Errorf("serve -json printed %q: not printable", line)
			}

			// The client is told the same, as one line of text.
			quoted := p.Line(t)
			text, err := strconv.Unquote(quoted)
			if err != nil {
				t.Fatalf("client printed %s: %v", quoted, err)
			}
			unitText := tt.unit
			if unitText == "" {
				unitText = "-"
			}
			if tt.userUnit != "" {
				unitText += " user-unit=" + tt.userUnit
			}
			cgroupText := tt.cgroupText
			if cgroupText == "" {
				cgroupText = cgroup
			}
			wantText := fmt.Sprintf("pid=%d uid=%s gid=1234 groups=- exe=%s start=%d unit=%s cgroup=%s\n",
				p.PID(), ids.WithName(user.UID), helper, start, unitText, cgroupText)
			_, gotText, _ := strings.Cut(text, " ") // after the time
			if diff := cmp.Diff(wantText, gotText); diff != "" {
				t.Errorf("the client was told (-want +got):\n%s", diff)
			}
		})
	}
	if err := srv.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGINT: %v, want exit status 0", err)
	}
}

// TestDialShowsUnit: dial prints the unit, cgroup, executable (and with
// -sha256 its digest) and start time of a server that the test moved into
// a cgroup. Where attestation fails (another user's process, for a dial or
// a serve without root), the output says why in one field, and the
// connection is served all the same.
func TestDialShowsUnit(t *testing.T) {
	testutil.RequireRoot(t)
	bin := build(t, "peercred")
	svc := fmt.Sprintf("app-test-%d.service", os.Getpid())
	cgroup := "/system.slice/" + svc
	dir := testutil.MakeCgroup(t, cgroup)
	sock := filepath.Join(testutil.SocketDir(t), "served.sock")
	owner := &testutil.User{UID: 1234, GID: 1234}
	srv := startCmd(t, testutil.Options{As: owner}, bin, "serve", sock)
	waitSocket(t, srv, sock)
	testutil.MoveToCgroup(t, dir, srv.PID())
	start := startTimeOf(t, srv.PID())
	sum := sha256.Sum256(readFile(t, bin))
	stranger := &testutil.User{UID: 2345, GID: 2345}

	attested := peer{PID: srv.PID(), UID: 1234, User: ids.UserName(1234), GID: 1234, Groups: []uint32{},
		Exe: bin, StartTime: start, Unit: svc, Cgroup: cgroup}
	hashed := attested
	hashed.SHA256 = hex.EncodeToString(sum[:])
	refused := peer{PID: srv.PID(), UID: 1234, User: ids.UserName(1234), GID: 1234, Groups: []uint32{},
		AttestError: fmt.Sprintf("peercred: attest pid %d: ", srv.PID())} // a prefix
	text := fmt.Sprintf("pid=%d uid=%s gid=1234 groups=- exe=%s start=%d unit=%s cgroup=%s",
		srv.PID(), ids.WithName(1234), bin, start, svc, cgroup)

	tests := []struct {
		name  string
		as    *testutil.User
		flags []string
		json  *peer  // want, for -json
		text  string // want, without -json
	}{
		{name: "json", flags: []string{"-json"}, json: &attested},
		{name: "text", text: text + "\n"},
		{name: "json with sha256", flags: []string{"-json", "-sha256"}, json: &hashed},
		{name: "text with sha256", flags: []string{"-sha256"}, text: text + " sha256=" + hashed.SHA256 + "\n"},
		{name: "json as another user", as: stranger, flags: []string{"-json"}, json: &refused},
		{name: "text as another user", as: stranger,
			text: fmt.Sprintf("pid=%d uid=%s gid=1234 groups=- exe=? attest-error=\"peercred: attest pid %d: ", srv.PID(), ids.WithName(1234), srv.PID())},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, testutil.Options{As: tt.as}, bin, append(append([]string{"dial"}, tt.flags...), sock)...)
			if code != 0 || stderr != "" {
				t.Fatalf("exit code %d, want 0; stderr:\n%s", code, stderr)
			}
			if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") {
				t.Errorf("dial printed %q, want one line", stdout)
			}
			if tt.json == nil {
				if tt.as == nil && stdout != tt.text || !strings.HasPrefix(stdout, tt.text) {
					t.Errorf("dial printed\n%q\nwant\n%q", stdout, tt.text)
				}
				return
			}
			var got peer
			if err := json.Unmarshal([]byte(stdout), &got); err != nil {
				t.Fatalf("dial -json printed %q: %v", stdout, err)
			}
			want := *tt.json
			if want.AttestError != "" {
				if !strings.HasPrefix(got.AttestError, want.AttestError) {
					t.Errorf("attest_error %q, want it to start with %q", got.AttestError, want.AttestError)
				}
				want.AttestError = got.AttestError
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("dial -json (-want +got):\n%s", diff)
			}
		})
	}

	// serve, as uid 1234, cannot attest its clients of other users, and
	// says so; it serves them all the same.
	for range tests {
		line := srv.Line(t)
		if !strings.Contains(line, " exe=? attest-error=\"peercred: attest pid ") || strings.Contains(line, " unit=") {
			t.Errorf("serve as uid 1234 printed %q for a client of another user, want an attest-error and no unit", line)
		}
	}
	if err := srv.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := srv.Wait(); err != nil {
		t.Errorf("serve after SIGTERM: %v, want exit status 0", err)
	}
}

// withoutAttest returns the output of serve or dial, text or JSON lines,
// without what Cred.Attest read: as it was before (for the tests written
// then, which do not know the start time).
func withoutAttest(t *testing.T, out string) string {
	t.Helper()
	var b strings.Builder
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "{") {
			var p peer
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			p.StartTime, p.Unit, p.UserUnit, p.Cgroup, p.SystemdCgroup, p.SHA256, p.AttestError = 0, "", "", "", "", "", ""
			if err := p.print(&b, true); err != nil {
				t.Fatal(err)
			}
			continue
		}
		for _, field := range []string{" start=", " attest-error="} {
			if i := strings.Index(line, field); i >= 0 {
				line = line[:i] + "\n"
			}
		}
		b.WriteString(line)
	}
	return b.String()
}

// startTimeOf reads the start time of pid: field 22 of /proc/PID/stat.
func startTimeOf(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ...: the fields after the last ')' start at 3.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 20 {
		t.Fatalf("/proc/%d/stat: %q", pid, b)
	}
	n, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		t.Fatalf("/proc/%d/stat: %v", pid, err)
	}
	return n
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
