package peercred_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

var activationVars = []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}

func init() {
	// activated one UID: take the one socket passed by the activator, with
	// an Authorizer that admits only UID; report what is left of the
	// activation (variables, inheritable descriptors), then accept one conn
	// and print its peer as "pid uid gid".
	//
	// activated named: take every socket passed, print "name address" for
	// each (names sorted, then in the order passed), then accept one conn
	// on each, in that order, and print "address pid uid gid".
	testutil.Register("activated", func(args []string) int {
		var lc peercred.ListenConfig
		var ls []*peercred.Listener
		var labels []string
		switch args[0] {
		case "one":
			uid, _ := strconv.Atoi(args[1])
			lc.Authorize = peercred.AllowUIDs(uint32(uid))
			l, err := lc.ActivationListener()
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			ls, labels = append(ls, l), append(labels, "")
		case "named":
			m, err := lc.ActivationListeners()
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			names := make([]string, 0, len(m))
			for name := range m {
				names = append(names, name)
			}
			slices.Sort(names)
			for _, name := range names {
				for _, l := range m[name] {
					ls, labels = append(ls, l), append(labels, name)
				}
			}
		}
		fmt.Printf("variables left: %q\n", setActivationVars())
		fmt.Printf("inheritable descriptors: %v\n", inheritableFDs())
		for i, l := range ls {
			if labels[i] != "" {
				fmt.Println(labels[i], l.Addr())
			}
		}
		for _, l := range ls {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			c, err := l.AcceptContext(ctx)
			cancel()
			if err != nil {
				fmt.Println("error:", err)
				return 1
			}
			cr := c.Cred()
			fmt.Println(l.Addr(), cr.PID, cr.UID, cr.GID)
			c.Close()
			l.Close()
		}
		return 0
	})
}

// setActivationVars returns the activation variables that are set.
func setActivationVars() []string {
	var set []string
	for _, v := range activationVars {
		if _, ok := os.LookupEnv(v); ok {
			set = append(set, v)
		}
	}
	return set
}

// inheritableFDs returns the descriptors above stderr that are not
// close-on-exec, and so would reach a child process.
func inheritableFDs() []int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return []int{-1}
	}
	var fds []int
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil || fd <= 2 {
			continue
		}
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err == nil && flags&unix.FD_CLOEXEC == 0 {
			fds = append(fds, fd)
		}
	}
	return fds
}

// startActivator runs systemd-socket-activate with args, executing the
// "activated" helper with helperArgs once the first client connects. It
// waits until every socket in paths is listening and makes it 0666, so
// that clients of any UID can connect (systemd-socket-activate creates it
// with the umask's mode).
func startActivator(t *testing.T, paths, args []string, helperArgs ...string) *testutil.Proc {
	t.Helper()
	bin := testutil.RequireCommand(t, "systemd-socket-activate")
	exe, env := testutil.HelperExec(t, "activated")
	for _, p := range paths {
		args = append(args, "-l", p)
	}
	for _, kv := range env {
		args = append(args, "-E", kv) // it passes the child only these and a few others
	}
	args = append(append(args, "--", exe), helperArgs...)
	p := testutil.Command(t, testutil.Options{}, bin, args...)
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Stderr(), "Listening on ") < len(paths) {
		if time.Now().After(deadline) {
			t.Fatalf("systemd-socket-activate is not listening on %v after 10s; stderr:\n%s", paths, p.Stderr())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, path := range paths {
		if err := os.Chmod(path, 0o666); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// One socket, passed by systemd-socket-activate: the helper it starts sees
// the credentials of a client under another UID, refuses a client its
// Authorizer does not admit, and leaves neither the variables nor an
// inheritable descriptor behind.
func TestActivationOneSocket(t *testing.T) {
	testutil.RequireRoot(t)
	path := filepath.Join(testutil.SocketDir(t), "s")
	p := startActivator(t, []string{path}, nil, "one", "1234")

	// The refused client connects first (and so starts the server), the
	// admitted one second; the server takes them in that order.
	refused := testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: &testutil.User{UID: 1235, GID: 2346}})
	if line := refused.Line(t); line != "connected" {
		t.Fatalf("refused client: %s", line)
	}
	admitted := testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: other})
	if line := admitted.Line(t); line != "connected" {
		t.Fatalf("admitted client: %s", line)
	}

	want := []string{
		`variables left: []`,
		`inheritable descriptors: []`,
		fmt.Sprintf("%s %d 1234 2345", path, admitted.PID()),
	}
	var got []string
	for range want {
		got = append(got, p.Line(t))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("activated server (-want +got):\n%s", diff)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := refused.Wait(); err != nil {
		t.Errorf("refused client: %v", err)
	}
	if log := p.Stderr(); !strings.Contains(log, "peer refused") || !strings.Contains(log, "uid=1235") {
		t.Errorf("server log does not report the refused uid 1235:\n%s", log)
	}
}

// Several named sockets, two of them with the same name: each name maps to
// its sockets in the order passed, and each sees its own client.
func TestActivationNamedSockets(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.SocketDir(t)
	paths := []string{filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")}
	p := startActivator(t, paths, []string{"--fdname=api:admin:api"}, "named")

	users := []*testutil.User{{UID: 1234, GID: 2345}, {UID: 1235, GID: 2346}, {UID: 1236, GID: 2347}}
	clients := make([]*testutil.Proc, len(paths))
	for i, path := range paths {
		clients[i] = testutil.Start(t, "connect", testutil.Options{Args: []string{path}, As: users[i]})
		if line := clients[i].Line(t); line != "connected" {
			t.Fatalf("client of %s: %s", path, line)
		}
	}

	// Names sorted, then in the order passed: admin (b), api (a, c).
	order := []int{1, 0, 2}
	want := []string{`variables left: []`, `inheritable descriptors: []`}
	for _, i := range order {
		want = append(want, []string{"api", "admin", "api"}[i]+" "+paths[i])
	}
	for _, i := range order {
		want = append(want, fmt.Sprintf("%s %d %d %d", paths[i], clients[i].PID(), users[i].UID, users[i].GID))
	}
	var got []string
	for range want {
		got = append(got, p.Line(t))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("activated server (-want +got):\n%s", diff)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// With --accept, systemd-socket-activate passes each connection rather than
// the listener: the helper must refuse it, saying so.
func TestActivationRefusesAcceptedConnection(t *testing.T) {
	path := filepath.Join(testutil.SocketDir(t), "s")
	p := startActivator(t, []string{path}, []string{"--accept"}, "one", "0")
	testutil.Start(t, "connect", testutil.Options{Args: []string{path}})
	line := p.Line(t)
	if !strings.HasPrefix(line, "error: ") || !strings.Contains(line, "not listening") {
		t.Errorf("helper passed a connection said %q, want an error saying it is not listening", line)
	}
}

// fdKind is a kind of descriptor to pass to the activation code.
type fdKind int

const (
	unixStream fdKind = iota
	unixSeqpacket
	unixDgram
	unixNotListening
	tcpListener
	regularFile
)

// newFD makes a descriptor of kind, closed at cleanup.
func newFD(t *testing.T, dir string, kind fdKind) int {
	t.Helper()
	mk := func(domain, typ int, sa unix.Sockaddr, listen bool) int {
		t.Helper()
		fd, err := unix.Socket(domain, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { unix.Close(fd) })
		if err := unix.Bind(fd, sa); err != nil {
			t.Fatal(err)
		}
		if listen {
			if err := unix.Listen(fd, 8); err != nil {
				t.Fatal(err)
			}
		}
		return fd
	}
	path := func() *unix.SockaddrUnix {
		f, err := os.CreateTemp(dir, "s")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		os.Remove(f.Name())
		return &unix.SockaddrUnix{Name: f.Name()}
	}
	switch kind {
	case unixStream:
		return mk(unix.AF_UNIX, unix.SOCK_STREAM, path(), true)
	case unixSeqpacket:
		return mk(unix.AF_UNIX, unix.SOCK_SEQPACKET, path(), true)
	case unixDgram:
		return mk(unix.AF_UNIX, unix.SOCK_DGRAM, path(), false)
	case unixNotListening:
		return mk(unix.AF_UNIX, unix.SOCK_STREAM, path(), false)
	case tcpListener:
		return mk(unix.AF_INET, unix.SOCK_STREAM, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}, true)
	case regularFile:
		f, err := os.CreateTemp(dir, "f")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return int(f.Fd())
	}
	t.Fatalf("unknown fd kind %d", kind)
	return -1
}

// passFDs duplicates fds to consecutive free descriptor numbers, not
// close-on-exec, as an activator leaves them, and returns the first. The
// spare numbers after them are free too.
func passFDs(t *testing.T, fds []int, spare int) int {
	t.Helper()
	first := 700
	for ; ; first += 32 {
		free := true
		for fd := first; fd < first+len(fds)+spare; fd++ {
			if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != unix.EBADF {
				free = false
			}
		}
		if free {
			break
		}
		if first > 5000 {
			t.Fatal("no free descriptor numbers")
		}
	}
	for i, fd := range fds {
		if err := unix.Dup3(fd, first+i, 0); err != nil {
			t.Fatal(err)
		}
	}
	return first
}

// fdState describes descriptor fd: "closed", "cloexec" or "inheritable".
func fdState(fd int) string {
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	switch {
	case err == unix.EBADF:
		return "closed"
	case err != nil:
		return err.Error()
	case flags&unix.FD_CLOEXEC != 0:
		return "cloexec"
	}
	return "inheritable"
}

func TestActivationChecks(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	const unset = "\x00unset"
	tests := []struct {
		name    string
		fds     []fdKind
		network string
		one     bool   // call ActivationListener rather than ActivationListeners
		pid     string // LISTEN_PID; "" is this process
		nfds    string // LISTEN_FDS; "" is len(fds)
		names   string // LISTEN_FDNAMES; "" is unset

		wantNames    map[string]int // on success: how many sockets each name has
		wantErr      string         // on failure: part of the message
		notActivated bool           // the error wraps ErrNotActivated
		untouched    bool           // the descriptors are left as they were (else closed)
	}{
		{name: "one socket without a name is unknown", fds: []fdKind{unixStream},
			wantNames: map[string]int{"unknown": 1}},
		{name: "ActivationListener takes one socket", fds: []fdKind{unixStream}, one: true, names: "web",
			wantNames: map[string]int{"": 1}},
		{name: "named sockets map by name", fds: []fdKind{unixStream, unixStream}, names: "api:admin",
			wantNames: map[string]int{"api": 1, "admin": 1}},
		{name: "duplicate names keep every socket", fds: []fdKind{unixStream, unixStream, unixStream}, names: "web:admin:web",
			wantNames: map[string]int{"web": 2, "admin": 1}},
		{name: "unixpacket takes seqpacket sockets", fds: []fdKind{unixSeqpacket}, network: "unixpacket",
			wantNames: map[string]int{"unknown": 1}},

		{name: "no variables is not activated", pid: unset, nfds: unset,
			wantErr: "LISTEN_PID and LISTEN_FDS are not set", notActivated: true, untouched: true},
		{name: "LISTEN_PID of another process is not activated", fds: []fdKind{unixStream}, pid: "1",
			wantErr: "LISTEN_PID=1 is another process, not this one (pid " + pid + ")", notActivated: true, untouched: true},
		{name: "LISTEN_FDS without LISTEN_PID is not activated", fds: []fdKind{unixStream}, pid: unset,
			wantErr: "LISTEN_FDS=1 is set but LISTEN_PID is not", notActivated: true, untouched: true},
		{name: "LISTEN_FDS=0 is not activated", nfds: "0",
			wantErr: "LISTEN_FDS=0", notActivated: true, untouched: true},
		{name: "LISTEN_PID not a number", fds: []fdKind{unixStream}, pid: "12x",
			wantErr: `LISTEN_PID="12x" is not a process ID`, untouched: true},
		{name: "LISTEN_FDS not a number", fds: []fdKind{unixStream}, nfds: "one",
			wantErr: `LISTEN_FDS="one" is not a number of descriptors`, untouched: true},
		{name: "LISTEN_FDS missing is not activated", fds: []fdKind{unixStream}, nfds: unset,
			wantErr: "is this process but LISTEN_FDS is not set", notActivated: true, untouched: true},
		{name: "fewer names than descriptors", fds: []fdKind{unixStream, unixStream, unixStream}, names: "a:b",
			wantErr: `LISTEN_FDS=3 but LISTEN_FDNAMES has 2 names ("a:b")`},
		{name: "more names than descriptors", fds: []fdKind{unixStream}, names: "a:b",
			wantErr: `LISTEN_FDS=1 but LISTEN_FDNAMES has 2 names`},
		{name: "an empty name", fds: []fdKind{unixStream, unixStream}, names: "a:",
			wantErr: `LISTEN_FDNAMES="a:": name 2 (of fd FIRST+1) is empty`},
		{name: "more descriptors than passed", fds: []fdKind{unixStream}, nfds: "2",
			wantErr: "fd FIRST+1 of LISTEN_FDS=2: fcntl: bad file descriptor"},
		{name: "a file is not a socket", fds: []fdKind{unixStream, regularFile}, names: "ok:file",
			wantErr: `fd FIRST+1 ("file"): not a socket but a regular file`},
		{name: "a socket that is not listening", fds: []fdKind{unixNotListening},
			wantErr: `fd FIRST ("unknown"): socket is not listening`},
		{name: "a TCP socket", fds: []fdKind{tcpListener},
			wantErr: "an AF_INET (IPv4) socket, not a Unix-domain (AF_UNIX) one"},
		{name: "a datagram socket", fds: []fdKind{unixDgram},
			wantErr: `a SOCK_DGRAM socket, want a SOCK_STREAM one (ListenConfig.Network "unix")`},
		{name: "a stream socket for unixpacket", fds: []fdKind{unixStream}, network: "unixpacket",
			wantErr: "a SOCK_STREAM socket, want a SOCK_SEQPACKET one"},
		{name: "a bad network", fds: []fdKind{unixStream}, network: "tcp",
			wantErr: `network "tcp" is not "unix" or "unixpacket"`},
		{name: "ActivationListener refuses two sockets", fds: []fdKind{unixStream, unixStream}, one: true,
			wantErr: "LISTEN_FDS=2, but ActivationListener takes exactly one socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testutil.SocketDir(t)
			var orig []int
			for _, k := range tt.fds {
				orig = append(orig, newFD(t, dir, k))
			}
			first := passFDs(t, orig, 2)
			passed := make([]int, len(orig)+1) // and one more, not open
			for i := range passed {
				passed[i] = first + i
			}
			t.Cleanup(func() {
				for _, fd := range passed[:len(orig)] {
					if fdState(fd) != "closed" {
						unix.Close(fd)
					}
				}
			})
			setenv := func(key, value, def string) {
				t.Setenv(key, "") // restored at cleanup
				switch value {
				case unset:
					os.Unsetenv(key)
				case "":
					if def == unset {
						os.Unsetenv(key)
					} else {
						os.Setenv(key, def)
					}
				default:
					os.Setenv(key, value)
				}
			}
			setenv("LISTEN_PID", tt.pid, pid)
			setenv("LISTEN_FDS", tt.nfds, strconv.Itoa(len(orig)))
			setenv("LISTEN_FDNAMES", tt.names, unset)

			lc := &peercred.ListenConfig{Network: tt.network}
			var got map[string][]*peercred.Listener
			var err error
			if tt.one {
				var l *peercred.Listener
				l, err = peercred.ActivationListenerAt(lc, first)
				if err == nil {
					got = map[string][]*peercred.Listener{"": {l}}
				}
			} else {
				got, err = peercred.ActivationListenersAt(lc, first)
			}
			for _, ls := range got {
				for _, l := range ls {
					t.Cleanup(func() { l.Close() })
				}
			}

			if left := setActivationVars(); len(left) > 0 {
				t.Errorf("variables still set: %v", left)
			}
			wantState := "closed" // passed on; or refused
			if tt.untouched {
				wantState = "inheritable"
			}
			var states []string
			for _, fd := range passed {
				states = append(states, fdState(fd))
			}
			wantStates := slices.Repeat([]string{wantState}, len(orig))
			if !tt.untouched && err != nil {
				// On error only sockets are closed: a LISTEN_FDS that
				// claims too much must not close the program's own files.
				for i, k := range tt.fds {
					if k == regularFile {
						wantStates[i] = "cloexec"
					}
				}
			}
			wantStates = append(wantStates, "closed") // never opened
			if diff := cmp.Diff(wantStates, states); diff != "" {
				t.Errorf("passed descriptors after the call (-want +got):\n%s", diff)
			}

			if tt.wantErr != "" {
				want := strings.ReplaceAll(tt.wantErr, "FIRST+1", strconv.Itoa(first+1))
				want = strings.ReplaceAll(want, "FIRST", strconv.Itoa(first))
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("error %v, want one containing %q", err, want)
				}
				if !strings.HasPrefix(err.Error(), "peercred: socket activation: ") {
					t.Errorf("error %q does not say it is about socket activation", err)
				}
				if got := errors.Is(err, peercred.ErrNotActivated); got != tt.notActivated {
					t.Errorf("errors.Is(%q, ErrNotActivated) = %v, want %v", err, got, tt.notActivated)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			counts := map[string]int{}
			for name, ls := range got {
				counts[name] = len(ls)
			}
			if diff := cmp.Diff(tt.wantNames, counts); diff != "" {
				t.Errorf("sockets by name (-want +got):\n%s", diff)
			}
			if got := inheritableFDs(); len(got) > 0 {
				t.Errorf("inheritable descriptors after activation: %v", got)
			}
			// Each listener serves: a client is accepted with its
			// credentials.
			network := "unix"
			if tt.network != "" {
				network = tt.network
			}
			for _, ls := range got {
				for _, l := range ls {
					c, err := peercred.DialNetwork(context.Background(), network, l.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					a := acceptTimeout(t, l)
					c.Close()
					if a.Cred().PID != os.Getpid() {
						t.Errorf("conn accepted on %s: cred %v, want our pid %d", l.Addr(), a.Cred(), os.Getpid())
					}
				}
			}
		})
	}
}

// Duplicate names keep the order in which the sockets were passed.
func TestActivationDuplicateNamesInOrder(t *testing.T) {
	dir := testutil.SocketDir(t)
	orig := []int{newFD(t, dir, unixStream), newFD(t, dir, unixStream), newFD(t, dir, unixStream)}
	var want []string
	for _, fd := range orig {
		sa, err := unix.Getsockname(fd)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, sa.(*unix.SockaddrUnix).Name)
	}
	first := passFDs(t, orig, 0)
	t.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	t.Setenv("LISTEN_FDS", "3")
	t.Setenv("LISTEN_FDNAMES", "x:x:x")
	m, err := peercred.ActivationListenersAt(&peercred.ListenConfig{}, first)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range m["x"] {
		got = append(got, l.Addr().String())
		l.Close()
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf(`listeners named "x" (-want +got):\n%s`, diff)
	}
}

// The public functions read descriptors from 3 on; in a test process that
// was not activated they report ErrNotActivated and unset the variables.
func TestActivationNotActivated(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "1")
	t.Setenv("LISTEN_FDNAMES", "x")
	var lc peercred.ListenConfig
	if _, err := lc.ActivationListeners(); !errors.Is(err, peercred.ErrNotActivated) {
		t.Errorf("ActivationListeners with LISTEN_PID=1: %v, want ErrNotActivated", err)
	}
	if left := setActivationVars(); len(left) > 0 {
		t.Errorf("variables still set: %v", left)
	}
	if _, err := lc.ActivationListener(); !errors.Is(err, peercred.ErrNotActivated) {
		t.Errorf("ActivationListener without variables: %v, want ErrNotActivated", err)
	}
}
