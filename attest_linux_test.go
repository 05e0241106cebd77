package peercred_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/proc"
	"github.com/peercred/peercred/testutil"
	"golang.org/x/sys/unix"
)

func init() {
	// exec-altered TARGET SOCKET ENV...: in a mount namespace of its own
	// (the helper runs in its own user namespace), mount a tmpfs over
	// TARGET's directory, put there a copy of our executable with one byte
	// appended (another program, which still runs), and exec it as the
	// helper role "connect SOCKET" (ENV selects the role).
	testutil.Register("exec-altered", func(args []string) int {
		if err := execAltered(args[0], args[1], args[2:]); err != nil {
			fmt.Println("error:", err)
			return 1
		}
		return 0 // not reached
	})
}

func execAltered(target, socket string, env []string) error {
	runtime.LockOSThread() // the mount namespace is the thread's until exec
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare CLONE_NEWNS: %w", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	if err := unix.Mount("tmpfs", filepath.Dir(target), "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", filepath.Dir(target), err)
	}
	if err := copyFile("/proc/self/exe", target); err != nil {
		return err
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write([]byte{0}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return unix.Exec(target, []string{target, socket}, append(os.Environ(), env...))
}

// sha256File returns the SHA-256 of the file at path.
func sha256File(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return h.Sum(nil)
}

// fileIDOf returns the device and inode of the file at path.
func fileIDOf(t *testing.T, path string) (dev, ino uint64) {
	t.Helper()
	var st unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, path, 0, unix.STATX_INO, &st); err != nil {
		t.Fatal(err)
	}
	return unix.Mkdev(st.Dev_major, st.Dev_minor), st.Ino
}

// connectedPeer starts the helper role "connect" with opts (its Args are
// filled in) and returns it with the accepted connection.
func connectedPeer(t *testing.T, opts testutil.Options) (*testutil.Proc, *peercred.Conn) {
	t.Helper()
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	opts.Args = []string{l.Addr().String()}
	p := testutil.Start(t, "connect", opts)
	if line := p.Line(t); line != "connected" {
		t.Fatalf("peer said %q", line)
	}
	return p, acceptTimeout(t, l)
}

// TestAttestDescribesThePeer: every fact Attest reports is the one /proc
// and the file system show for the peer's process, read independently.
func TestAttestDescribesThePeer(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "connect")
	p, c := connectedPeer(t, testutil.Options{As: other})
	got, err := c.Cred().Attest(&peercred.AttestOptions{HashExecutable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%v cgroup id %d", got, got.CgroupID)
	st, err := proc.ReadStat(p.PID())
	if err != nil {
		t.Fatal(err)
	}
	dev, ino := fileIDOf(t, helper)
	cgroup := testutil.CgroupOf(t, p.PID())
	unit, slice, _, _ := peercred.SystemdUnit(cgroup)
	if got.PID != p.PID() || got.StartTime != st.StartTime {
		t.Errorf("pid %d start %d, want %d start %d", got.PID, got.StartTime, p.PID(), st.StartTime)
	}
	if got.Exe.Path != helper || got.Exe.Dev != dev || got.Exe.Ino != ino {
		t.Errorf("exe %q dev %d ino %d, want %q dev %d ino %d", got.Exe.Path, got.Exe.Dev, got.Exe.Ino, helper, dev, ino)
	}
	if want := sha256File(t, helper); !bytes.Equal(got.Exe.SHA256, want) {
		t.Errorf("exe SHA-256 %x, want %x", got.Exe.SHA256, want)
	}
	if got.Cgroup != cgroup || got.Unit != unit || got.Slice != slice {
		t.Errorf("cgroup %q unit %q slice %q, want %q %q %q", got.Cgroup, got.Unit, got.Slice, cgroup, unit, slice)
	}
	ns := got.Namespaces
	for name, n := range map[string]peercred.Namespace{"user": ns.User, "pid": ns.PID, "mnt": ns.Mount, "net": ns.Net, "cgroup": ns.Cgroup} {
		link, err := os.Readlink("/proc/self/ns/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if want := fmt.Sprintf("%s:[%d]", name, n.ID); link != want || !n.Ours {
			t.Errorf("namespace %s: id %d ours %v, want %s and ours", name, n.ID, n.Ours, link)
		}
	}
	// Linux 6.13+ names the cgroup by the inode of its directory.
	if mnt := testutil.CgroupMount("cgroup2", ""); got.CgroupID != 0 && mnt != "" {
		if _, ino := fileIDOf(t, filepath.Join(mnt, cgroup)); got.CgroupID != ino {
			t.Errorf("cgroup id %d, want the inode %d of %s", got.CgroupID, ino, filepath.Join(mnt, cgroup))
		}
	}
	if none, err := c.Cred().Attest(nil); err != nil || none.Exe.SHA256 != nil {
		t.Errorf("Attest(nil): SHA-256 %x, %v; want none unasked", none.Exe.SHA256, err)
	}
}

// TestAttestLeaksNoDescriptors: Attest, admitting or failing, closes
// every descriptor it opens.
func TestAttestLeaksNoDescriptors(t *testing.T) {
	testutil.RequireRoot(t)
	_, c := connectedPeer(t, testutil.Options{As: other})
	p2, c2 := connectedPeer(t, testutil.Options{As: other})
	c2.Close()
	if err := p2.Wait(); err != nil { // its pipes closed before counting
		t.Fatal(err)
	}
	c.Cred().Attest(nil) // descriptors opened once (by the runtime) first
	before := openFDs(t)
	for range 200 {
		if _, err := c.Cred().Attest(&peercred.AttestOptions{HashExecutable: true}); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 {
		if _, err := c2.Cred().Attest(nil); err == nil {
			t.Fatal("Attest after Close succeeded")
		}
	}
	if after := openFDs(t); after != before {
		t.Errorf("open descriptors: %d before, %d after", before, after)
	}
}

// TestAttestSameUserPeer: without privilege, a server attests a peer of
// its own UID (whose /proc/PID/exe and ns it may read).
func TestAttestSameUserPeer(t *testing.T) {
	helper, _ := testutil.HelperExec(t, "connect")
	p, c := connectedPeer(t, testutil.Options{})
	got, err := c.Cred().Attest(&peercred.AttestOptions{HashExecutable: true})
	if err != nil {
		t.Fatal(err)
	}
	if got.PID != p.PID() || got.Exe.Path != helper || !bytes.Equal(got.Exe.SHA256, sha256File(t, helper)) || !got.Namespaces.User.Ours {
		t.Errorf("got %v (SHA-256 %x, namespaces %+v), want pid %d running %s in our namespaces", got, got.Exe.SHA256, got.Namespaces, p.PID(), helper)
	}
}

// TestAttestRefusesWithoutPeer: Attest describes nothing it cannot
// confirm: a Cred made by hand (no pidfd), a closed connection.
func TestAttestRefusesWithoutPeer(t *testing.T) {
	me := &peercred.Cred{PID: os.Getpid(), UID: uint32(os.Geteuid())}
	if p, err := me.Attest(nil); err == nil {
		t.Errorf("Attest of a Cred made by hand: %v, want an error", p)
	}
	_, c := connectedPeer(t, testutil.Options{})
	cred := c.Cred().Clone()
	c.Close()
	if p, err := cred.Attest(nil); err == nil {
		t.Errorf("Attest after Close: %v, want an error", p)
	}
}

// TestAttestNeverDescribesAReusedPID: the peer connects and exits, a
// process takes its PID; Attest fails for the Conn's Cred, a Clone and
// what Get reads, and no Authorizer on it admits.
func TestAttestNeverDescribesAReusedPID(t *testing.T) {
	testutil.RequireRoot(t)
	helper, _ := testutil.HelperExec(t, "idle")
	c, taker := connReusedPID(t)
	got, err := peercred.Get(c)
	if err != nil {
		t.Fatal(err)
	}
	for name, cred := range map[string]*peercred.Cred{"Cred()": c.Cred(), "Cred().Clone()": c.Cred().Clone(), "Get": got} {
		if p, err := cred.Attest(&peercred.AttestOptions{HashExecutable: true}); err == nil {
			t.Errorf("Attest of %s of an exited peer described pid %d, now our helper: %v", name, taker.PID(), p)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
	sum := hex.EncodeToString(sha256File(t, helper))
	for name, auth := range map[string]peercred.Authorizer{
		"AllowCgroups(/)":             peercred.AllowCgroups("/"),
		"AllowExecutableSHA256(ours)": peercred.AllowExecutableSHA256(sum),
		"SameNamespaces":              peercred.SameNamespaces(),
		"AllowUnits(its unit)":        peercred.AllowUnits(unitOf(t, taker.PID())),
	} {
		err := auth(c.Cred())
		if err == nil {
			t.Errorf("%s admitted an exited peer, pid %d now our helper", name, taker.PID())
		} else if !errors.Is(err, peercred.ErrUnauthorized) {
			t.Errorf("%s: refusal %v does not wrap ErrUnauthorized", name, err)
		}
	}
}

// unitOf is the systemd unit of pid's cgroup, or a name that matches none.
func unitOf(t *testing.T, pid int) string {
	t.Helper()
	unit, _, _, _ := peercred.SystemdUnit(testutil.CgroupOf(t, pid))
	if unit == "" {
		return "none.service"
	}
	return unit
}

// TestSameNamespacesNamesTheOther: a peer in a user namespace of its own
// is refused, and the refusal names the user namespace only; a peer in
// ours is admitted.
func TestSameNamespacesNamesTheOther(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	_, c := connectedPeer(t, testutil.Options{As: other})
	if err := peercred.SameNamespaces()(c.Cred()); err != nil {
		t.Errorf("peer in our namespaces refused: %v", err)
	}
	_, c = connectedPeer(t, testutil.Options{As: &testutil.User{UID: 1234, GID: 2345}, UserNS: true})
	err := peercred.SameNamespaces()(c.Cred())
	t.Logf("%v", err)
	if !errors.Is(err, peercred.ErrUnauthorized) {
		t.Fatalf("peer in its own user namespace: %v, want a refusal", err)
	}
	for _, ns := range []string{"pid:", "mnt:", "net:", "cgroup:"} {
		if strings.Contains(err.Error(), ns) {
			t.Errorf("refusal %q names %s, which is ours", err, ns)
		}
	}
	if !strings.Contains(err.Error(), "user:[") {
		t.Errorf("refusal %q does not name the user namespace", err)
	}
	p, aerr := c.Cred().Attest(nil)
	if aerr != nil {
		t.Fatal(aerr)
	}
	if n := p.Namespaces; n.User.Ours || !n.PID.Ours || !n.Mount.Ours || !n.Net.Ours || !n.Cgroup.Ours {
		t.Errorf("namespaces %+v: want all ours but the user namespace", n)
	}
}

// TestAttestExecutableFromTmpfs: a peer in its own user and mount
// namespaces runs, at the path of an allowed file, a program of its own
// from a tmpfs. Attest shows the path it chose, but the file's device and
// inode and its SHA-256 are the tmpfs file's, and both executable rules
// refuse it. A plain copy of the allowed file (same bytes) is another file
// to AllowExecutables but the same program to AllowExecutableSHA256.
func TestAttestExecutableFromTmpfs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	allowed, roleEnv := testutil.HelperExec(t, "connect")
	sum := sha256File(t, allowed)
	dev, ino := fileIDOf(t, allowed)
	nsUser := &testutil.User{UID: 1234, GID: 2345}
	tests := []struct {
		name     string
		role     string
		args     []string
		userNS   bool
		samePath bool // the peer's exe path is the allowed one
		sameFile bool
		sameHash bool
	}{
		{name: "the allowed file", role: "connect", samePath: true, sameFile: true, sameHash: true},
		{name: "another program on a tmpfs at the allowed path",
			role: "exec-altered", args: []string{allowed}, userNS: true, samePath: true},
		{name: "a copy of the allowed file on a tmpfs at the allowed path",
			role: "exec-as", args: []string{"mntns,tmpfs,copy", allowed}, userNS: true, samePath: true, sameHash: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := listen(t, &peercred.ListenConfig{Mode: 0666})
			opts := testutil.Options{As: other, Args: []string{l.Addr().String()}}
			if tt.role != "connect" {
				opts.Args = append(append(tt.args, l.Addr().String()), roleEnv...)
			}
			if tt.userNS {
				opts.As, opts.UserNS = nsUser, true
			}
			p := testutil.Start(t, tt.role, opts)
			if line := p.Line(t); line != "connected" {
				t.Fatalf("peer said %q", line)
			}
			c := acceptTimeout(t, l)
			got, err := c.Cred().Attest(&peercred.AttestOptions{HashExecutable: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%v dev %d ino %d sha256 %x", got, got.Exe.Dev, got.Exe.Ino, got.Exe.SHA256)
			if (got.Exe.Path == allowed) != tt.samePath {
				t.Errorf("exe path %q, allowed %q: same=%v, want %v", got.Exe.Path, allowed, !tt.samePath, tt.samePath)
			}
			if sameFile := got.Exe.Dev == dev && got.Exe.Ino == ino; sameFile != tt.sameFile {
				t.Errorf("exe dev %d ino %d, allowed file's %d %d: same=%v, want %v", got.Exe.Dev, got.Exe.Ino, dev, ino, sameFile, tt.sameFile)
			}
			if sameHash := bytes.Equal(got.Exe.SHA256, sum); sameHash != tt.sameHash {
				t.Errorf("exe SHA-256 %x, allowed file's %x: same=%v, want %v", got.Exe.SHA256, sum, sameHash, tt.sameHash)
			}
			for _, rule := range []struct {
				name string
				auth peercred.Authorizer
				want bool
			}{
				{"AllowExecutables(allowed) with AnyMountNamespace",
					peercred.Executables{Paths: []string{allowed}, AnyMountNamespace: true}.Authorizer(), tt.sameFile},
				{"AllowExecutableSHA256(allowed's)", peercred.AllowExecutableSHA256(hex.EncodeToString(sum)), tt.sameHash},
			} {
				err := rule.auth(c.Cred())
				t.Logf("%s: %v", rule.name, err)
				if (err == nil) != rule.want {
					t.Errorf("%s: %v; want admitted=%v", rule.name, err, rule.want)
				}
				if err != nil && !errors.Is(err, peercred.ErrUnauthorized) {
					t.Errorf("%s: refusal %v does not wrap ErrUnauthorized", rule.name, err)
				}
			}
		})
	}
}

// TestAttestExecutableDeletedWhileRunning: the SHA-256 of an executable
// deleted after the peer started is still the one of the file it runs,
// read through /proc/PID/exe; its path shows " (deleted)".
func TestAttestExecutableDeletedWhileRunning(t *testing.T) {
	testutil.RequireRoot(t)
	allowed, roleEnv := testutil.HelperExec(t, "connect")
	target := filepath.Join(publicDir(t), "soon-deleted")
	l := listen(t, &peercred.ListenConfig{Mode: 0666})
	p := testutil.Start(t, "exec-as", testutil.Options{As: other,
		Args: append([]string{"copy", target, l.Addr().String()}, roleEnv...)})
	if line := p.Line(t); line != "connected" {
		t.Fatalf("peer said %q", line)
	}
	c := acceptTimeout(t, l)
	sum := sha256File(t, target)
	if want := sha256File(t, allowed); !bytes.Equal(sum, want) {
		t.Fatalf("copy's SHA-256 %x differs from the original's %x", sum, want)
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	got, err := c.Cred().Attest(&peercred.AttestOptions{HashExecutable: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := target + " (deleted)"; got.Exe.Path != want {
		t.Errorf("exe path %q, want %q", got.Exe.Path, want)
	}
	if !bytes.Equal(got.Exe.SHA256, sum) {
		t.Errorf("exe SHA-256 %x, want %x", got.Exe.SHA256, sum)
	}
	if err := peercred.AllowExecutableSHA256(hex.EncodeToString(sum))(c.Cred()); err != nil {
		t.Errorf("AllowExecutableSHA256 of the deleted file refused: %v", err)
	}
	if err := peercred.AllowExecutableSHA256(strings.Repeat("00", 32), "not-hex")(c.Cred()); !errors.Is(err, peercred.ErrUnauthorized) ||
		!strings.Contains(err.Error(), `"not-hex" is not a SHA-256 sum`) || !strings.Contains(err.Error(), hex.EncodeToString(sum)) {
		t.Errorf("AllowExecutableSHA256 of other sums: %v, want a refusal naming the peer's sum and the bad one", err)
	}
}

// TestAllowUnitsInCgroups: peers moved into cgroups the test creates are
// admitted or refused by their systemd unit and cgroup; a user's unit
// named like a system one is not that system unit; a refusal names the
// peer's unit and cgroup.
func TestAllowUnitsInCgroups(t *testing.T) {
	testutil.RequireRoot(t)
	if own := testutil.CgroupOf(t, os.Getpid()); own != "/" {
		// Not a rule of the kernel's, but paths would be relative to
		// our cgroup namespace, and the test's arithmetic wrong.
		t.Logf("test process is in cgroup %q", own)
	}
	svc := fmt.Sprintf("peercred-test-%d.service", os.Getpid())
	uid := strconv.Itoa(int(other.UID))
	tests := []struct {
		name   string
		cgroup string
		auth   peercred.Authorizer
		admit  bool
	}{
		{"its unit admits it", "/system.slice/" + svc, peercred.AllowUnits("backup.service", svc), true},
		{"another unit refuses it", "/system.slice/" + svc, peercred.AllowUnits("backup.service"), false},
		{"its slice's cgroup admits it", "/system.slice/" + svc, peercred.AllowCgroups("/system.slice"), true},
		{"a prefix that is not a whole component refuses it", "/system.slice/" + svc, peercred.AllowCgroups("/system.slic"), false},
		{"its own cgroup admits it", "/system.slice/" + svc, peercred.AllowCgroups("/system.slice/" + svc), true},
		{"a user's unit of the same name is not the system unit",
			"/user.slice/user-" + uid + ".slice/user@" + uid + ".service/app.slice/" + svc, peercred.AllowUnits(svc), false},
		{"the user's service manager admits it",
			"/user.slice/user-" + uid + ".slice/user@" + uid + ".service/app.slice/" + svc, peercred.AllowUnits("user@" + uid + ".service"), true},
		{"composed: AllOf a UID and its unit", "/system.slice/" + svc,
			peercred.AllOf(peercred.AllowUIDs(other.UID), peercred.AllowUnits(svc)), true},
		{"composed: AnyOf other units", "/system.slice/" + svc,
			peercred.AnyOf(peercred.AllowUnits("a.service"), peercred.AllowCgroups("/user.slice")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := testutil.MakeCgroup(t, tt.cgroup)
			p, c := connectedPeer(t, testutil.Options{As: other})
			testutil.MoveToCgroup(t, dir, p.PID())
			got, err := c.Cred().Attest(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cgroup != tt.cgroup {
				t.Fatalf("cgroup %q, want %q", got.Cgroup, tt.cgroup)
			}
			if _, ino := fileIDOf(t, dir); got.CgroupID != 0 && got.CgroupID != ino {
				t.Errorf("cgroup id %d, want the inode %d of %s", got.CgroupID, ino, dir)
			}
			err = tt.auth(c.Cred())
			t.Logf("unit %q slice %q user unit %q: %v", got.Unit, got.Slice, got.UserUnit, err)
			if (err == nil) != tt.admit {
				t.Fatalf("%v; want admitted=%v", err, tt.admit)
			}
			if err != nil && (!errors.Is(err, peercred.ErrUnauthorized) || !strings.Contains(err.Error(), tt.cgroup)) {
				t.Errorf("refusal %q does not wrap ErrUnauthorized and name the cgroup %q", err, tt.cgroup)
			}
		})
	}
}

// TestAllowUnitsInSystemdV1Hierarchy: on a host where systemd tracks
// units in the cgroup v1 name=systemd hierarchy (legacy mode: the peer is
// in the cgroup v2 root), the unit comes from there.
func TestAllowUnitsInSystemdV1Hierarchy(t *testing.T) {
	testutil.RequireRoot(t)
	mnt := testutil.CgroupMount("cgroup", "name=systemd")
	if mnt == "" {
		t.Skip("no cgroup v1 name=systemd hierarchy is mounted here")
	}
	if own := testutil.CgroupOf(t, os.Getpid()); own != "/" {
		t.Skipf("test process is in cgroup v2 %q, not the root: its peers would be too", own)
	}
	svc := fmt.Sprintf("peercred-test-%d.service", os.Getpid())
	cgroup := "/system.slice/" + svc
	dir := testutil.MakeCgroupIn(t, mnt, cgroup)
	p, c := connectedPeer(t, testutil.Options{As: other})
	testutil.MoveToCgroup(t, dir, p.PID())
	got, err := c.Cred().Attest(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cgroup != "/" || got.SystemdCgroup != cgroup || got.Unit != svc || got.Slice != "system.slice" {
		t.Errorf("cgroup %q systemd cgroup %q unit %q slice %q; want \"/\" %q %q \"system.slice\"",
			got.Cgroup, got.SystemdCgroup, got.Unit, got.Slice, cgroup, svc)
	}
	if err := peercred.AllowUnits(svc)(c.Cred()); err != nil {
		t.Errorf("AllowUnits(%s) refused it: %v", svc, err)
	}
	if err := peercred.AllowUnits("backup.service")(c.Cred()); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("AllowUnits(backup.service): %v, want a refusal", err)
	}
}
