//go:build linux

// The parent's verification of a spawned worker, from what the kernel says.

package privsep

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/proc"
	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// verify waits for the worker's hello and checks, from what the kernel
// says, that it is the child we started with the spec's identity. It
// returns the connection the hello carried, which the worker made (the
// caller closes it).
//
// withGID: the worker was exec'd by spawnIDs, which adds its GID to its
// supplementary groups.
func (s *Supervisor) verify(ctx context.Context, mc *msgConn, spec *Spec, pid int, withGID bool) (_ *Peer, _ *peercred.Conn, err error) {
	var conn *peercred.Conn
	defer func() {
		if err != nil && conn != nil {
			conn.Close()
		}
	}()
	// fail wraps ErrVerify, and the causes among args (%w in format).
	fail := func(format string, args ...any) (*Peer, *peercred.Conn, error) {
		return nil, nil, fmt.Errorf("%w: %s worker pid %d: "+format, append([]any{ErrVerify, spec.Role, pid}, args...)...)
	}
	deadline := time.Now().Add(spec.HelloTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	m, err := mc.readBefore(ctx, deadline)
	if err != nil {
		if ctx.Err() != nil {
			return fail("no hello: %w", ctx.Err())
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return fail("no hello within %v", spec.HelloTimeout)
		}
		if isEOF(err) {
			return fail("exited before its hello")
		}
		return fail("hello: %w", err)
	}
	defer m.closeFiles()
	if m.Kind != wire.KindHello {
		return fail("first message is %v, want hello", m.Kind)
	}
	if len(m.Files) != 1 {
		return fail("hello carries %d descriptors, want 1 (the worker's connection)", len(m.Files))
	}
	if m.Op != spec.Role {
		return fail("hello is for role %q, want %q", m.Op, spec.Role)
	}
	if m.Cred == nil {
		return fail("hello has no SCM_CREDENTIALS")
	}
	// SCM_CREDENTIALS: the kernel filled these in at send time (or checked
	// them, had the sender supplied its own).
	if int(m.Cred.Pid) != pid {
		return fail("hello sent by pid %d, not the worker", m.Cred.Pid)
	}
	if m.Cred.Uid != spec.UID {
		return fail("uid is %d, want %d", m.Cred.Uid, spec.UID)
	}
	if m.Cred.Gid != spec.GID {
		return fail("gid is %d, want %d", m.Cred.Gid, spec.GID)
	}
	// The connection: a socket pair the worker made itself, which
	// SO_PEERCRED on our end says (the creator of a pair).
	if conn, err = peercred.FileConn(m.Files[0]); err != nil {
		return fail("the hello's connection: %w", err)
	}
	if typ, err := socketType(conn); err != nil {
		return fail("the hello's connection: SO_TYPE: %w", err)
	} else if typ != syscall.SOCK_SEQPACKET {
		return fail("the hello's connection is socket type %d, want SOCK_SEQPACKET", typ)
	}
	// A listening socket reports its creator too, and is no connection.
	if listening, err := sockoptInt(conn, unix.SO_ACCEPTCONN); err != nil {
		return fail("the hello's connection: SO_ACCEPTCONN: %w", err)
	} else if listening != 0 {
		return fail("the hello's connection is a listening socket, want a connected one")
	}
	if cred := conn.Cred(); cred == nil {
		return fail("the hello's connection has no peer credentials")
	} else if cred.PID != pid || cred.UID != spec.UID {
		return fail("the hello's connection was made by pid %d uid %d, not the worker", cred.PID, cred.UID)
	}
	// /proc of our unreaped child: the PID is still its own. All four IDs
	// (real, effective, saved, filesystem), groups and no_new_privs.
	st, err := proc.ReadStatus("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return fail("%w", err)
	}
	for _, f := range []struct {
		field string
		want  uint32
	}{{"Uid", spec.UID}, {"Gid", spec.GID}} {
		ids, ok := st.IDs(f.field)
		if !ok || len(ids) != 4 {
			v, _ := st.Field(f.field)
			return fail("/proc status %s: %q", f.field, v)
		}
		for _, id := range ids {
			if id != f.want {
				return fail("/proc status %s is %v, want %d in all four", f.field, ids, f.want)
			}
		}
	}
	groups, ok := st.IDs("Groups")
	if !ok {
		v, _ := st.Field("Groups")
		return fail("/proc status Groups: %q", v)
	}
	wantGroups := slices.Clone(spec.Groups)
	if withGID && !slices.Contains(wantGroups, spec.GID) {
		wantGroups = append(wantGroups, spec.GID)
	}
	if os.Geteuid() != 0 {
		// A non-root parent's workers keep its groups: it may not set
		// them, nor (in a new user namespace) let the worker set them.
		wantGroups = nil
		if g, err := os.Getgroups(); err == nil {
			for _, id := range g {
				wantGroups = append(wantGroups, uint32(id))
			}
		}
	}
	slices.Sort(groups)
	slices.Sort(wantGroups)
	if !slices.Equal(groups, wantGroups) {
		return fail("groups are %v, want %v", groups, wantGroups)
	}
	if v, _ := st.Field("NoNewPrivs"); v != "1" {
		return fail("NoNewPrivs is %q, want 1", v)
	}
	// A worker that is not root has no capabilities, whatever its parent
	// had. (In a user namespace of its own it has them there.)
	if spec.UID != 0 && !spec.UserNS {
		for _, f := range []string{"CapPrm", "CapEff", "CapAmb"} {
			caps, _ := st.Field(f)
			if v, err := strconv.ParseUint(caps, 16, 64); err != nil || v != 0 {
				return fail("/proc status %s is %q, want no capabilities", f, caps)
			}
		}
	}
	// Not dumpable, and not traced: no other process of its UID holds
	// its memory, descriptors or connection (dumpable_linux.go).
	if v, _ := st.Field("TracerPid"); v != "0" {
		return fail("traced by pid %s", v)
	}
	if err := checkNotDumpable(spec, pid); err != nil {
		return fail("%w", err)
	}
	if withGID && !slices.Contains(spec.Groups, spec.GID) {
		// The worker's GID, added for its exec: the spec's groups are
		// what its handlers are told.
		groups = slices.DeleteFunc(groups, func(g uint32) bool { return g == spec.GID })
	}
	peer := &Peer{Role: spec.Role, PID: pid, UID: m.Cred.Uid, GID: m.Cred.Gid, Groups: groups}
	if spec.Confine != nil {
		// Every thread's seccomp and no_new_privs, limits, namespaces,
		// and the worker's report in the hello (internal/sandbox).
		if peer.Confinement, err = s.verifyConfinement(spec, pid, m.Payload); err != nil {
			return fail("%w", err)
		}
	}
	return peer, conn, nil
}

// socketType returns c's SO_TYPE.
func socketType(c *peercred.Conn) (int, error) { return sockoptInt(c, unix.SO_TYPE) }

// sockoptInt returns c's socket option opt (at SOL_SOCKET).
func sockoptInt(c *peercred.Conn, opt int) (int, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var v int
	var serr error
	if err := rc.Control(func(fd uintptr) {
		v, serr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, opt)
	}); err != nil {
		return 0, err
	}
	return v, serr
}
