//go:build linux

package privsep

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
)

// ListenUnix serves workers that the supervisor did not start on the named
// SOCK_SEQPACKET socket path (a file, mode 0666, or "@name"). Each connecting
// process is identified by SO_PEERCRED (the kernel's record of it at
// connect), must pass auth, and then asks for a role in its hello: it is
// admitted only if that role's [Policy.Claim] admits it too, and then gets the
// role's policy. Use [Dial] in the client. auth must not be nil.
//
// ListenUnix returns once the socket is listening; it serves until ctx ends or
// the supervisor shuts down.
func (s *Supervisor) ListenUnix(ctx context.Context, path string, auth peercred.Authorizer) error {
	if s.err != nil {
		return fmt.Errorf("privsep: listen %s: %w", path, s.err)
	}
	if auth == nil {
		return fmt.Errorf("privsep: listen %s: nil Authorizer: pass one (deny by default)", path)
	}
	lc := peercred.ListenConfig{Network: "unixpacket", Authorize: auth, Logger: s.log()}
	if path != "" && path[0] != '@' {
		lc.Mode = 0666 // the Authorizer decides, not the file mode
	}
	l, err := lc.Listen(ctx, path)
	if err != nil {
		return fmt.Errorf("privsep: %w", err)
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		l.Close()
		return fmt.Errorf("privsep: listen %s: %w", path, ErrUnavailable)
	}
	s.listeners[l] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		defer s.wg.Done()
		defer stop()
		defer func() {
			s.mu.Lock()
			delete(s.listeners, l)
			s.mu.Unlock()
			l.Close()
		}()
		var delay time.Duration
		for {
			c, err := l.AcceptPeerCred()
			if err != nil {
				var ne net.Error
				//lint:ignore SA1019 accept loops go by Temporary, as net/http's Server does: peercred.Listener documents a peer whose credentials it could not read as temporary, and nothing else tells that from a broken listener.
				if errors.As(err, &ne) && ne.Temporary() {
					// One peer's credentials could not be read, or we
					// are out of descriptors (EMFILE): back off, as
					// http.Server does, rather than spin.
					delay = min(max(2*delay, 5*time.Millisecond), time.Second)
					s.log().Warn("privsep: accept on named socket", "path", path, "err", err, "retry_in", delay)
					t := time.NewTimer(delay)
					select {
					case <-t.C:
					case <-ctx.Done():
					case <-s.closingCh:
					}
					t.Stop()
					continue
				}
				return
			}
			delay = 0
			uid := c.Cred().UID
			if reason := s.takePreHello(uid); reason != "" {
				s.logNamedRefusal(c.Cred(), errors.New(reason))
				c.Close()
				continue
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.admit(c)
			}()
		}
	}()
	return nil
}

// admit reads a named-socket client's hello and serves it if its role's
// Claim allows.
func (s *Supervisor) admit(c *peercred.Conn) {
	cred := c.Cred()
	// refuse logs why, as an error that keeps its causes (%w), and
	// closes the connection.
	refuse := func(format string, args ...any) {
		s.logNamedRefusal(cred, fmt.Errorf(format, args...))
		c.Close()
	}
	// The session closes the pidfd when it ends.
	pidfd, _ := c.PidFD()
	admitted := false
	defer func() {
		if pidfd != nil && !admitted {
			pidfd.Close()
		}
	}()
	// The place taken in ListenUnix is held until the role's Claim has
	// answered: an Authorizer may block (a stat of a peer's executable on
	// a FUSE file system its owner stopped serving), and then holds this
	// goroutine and its thread, which the place bounds per UID.
	held := true
	release := func() {
		if held {
			held = false
			s.releasePreHello(cred.UID)
		}
	}
	defer release()
	mc, err := newMsgConn(c, s.lim)
	if err != nil {
		refuse("%w", err)
		return
	}
	mc.wto = s.cfg.WriteTimeout
	m, err := mc.readBefore(s.closingCtx, time.Now().Add(helloTimeout))
	if err != nil {
		refuse("hello: %w", err)
		return
	}
	m.closeFiles()
	if m.Kind != wire.KindHello {
		refuse("first message is %v, want hello", m.Kind)
		return
	}
	role := m.Op
	pol, ok := s.cfg.Roles[role]
	if !ok || pol.Claim == nil {
		refuse("role %q cannot be claimed over a named socket", role)
		return
	}
	// One reading of the process, read now, for the Claim's Authorizers
	// and the Peer alike.
	claimed := cred.WithAttestation(nil)
	proc, attestErr := claimed.Attest(nil)
	if err := pol.Claim(claimed); err != nil {
		if proc != nil {
			refuse("role %q: %w (process %v)", role, err, proc)
		} else {
			refuse("role %q: %w", role, err)
		}
		return
	}
	groups, err := cred.Groups() // read from c, which is open
	if err != nil {
		refuse("role %q: %v", role, err)
		return
	}
	release()
	// Admitted: the session holds its place until it ends (finish).
	if reason := s.takeNamed(cred.UID); reason != "" {
		// Say why, so that the client's Dial can: an error in answer
		// to the hello.
		mc.write(&wire.Msg{Kind: wire.KindError, ID: helloRefusalID, Code: wire.CodeUnavailable,
			Payload: errPayload(errors.New(reason), s.lim)}, nil)
		refuse("role %q: %s", role, reason)
		return
	}
	if err := mc.detach(); err != nil {
		s.releaseNamed(cred.UID)
		refuse("%w", err)
		return
	}
	peer := &Peer{Role: role, PID: cred.PID, UID: cred.UID, GID: cred.GID, Groups: groups, Named: true, PidFD: pidfd, Process: proc}
	ss, err := s.newSession(mc, peer, nil)
	if err != nil {
		s.releaseNamed(cred.UID)
		mc.release()
		return
	}
	if err := mc.write(s.welcome(), nil); err != nil {
		ss.end(err)
	}
	s.log().Info("privsep: named-socket worker admitted", append([]any{"role", role, "pid", cred.PID, "uid", cred.UID},
		processAttrs(proc, attestErr)...)...)
	admitted = true
	ss.start()
}

// Connections that have not said hello cost a goroutine and a descriptor
// each, for up to helloTimeout: at most maxPreHello in all, and
// maxPreHelloPerUID per user, so that one user cannot lock out the others.
const (
	helloTimeout      = 3 * time.Second
	maxPreHelloPerUID = 8
)

// takePreHello reserves a place for a connection of uid waiting for its
// hello, or says why there is none.
func (s *Supervisor) takePreHello(uid uint32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.preHelloUID[uid] >= maxPreHelloPerUID {
		return fmt.Sprintf("uid %d has %d connections waiting to say hello already", uid, maxPreHelloPerUID)
	}
	select {
	case s.preHello <- struct{}{}:
	default:
		return fmt.Sprintf("too many connections waiting to say hello (%d)", cap(s.preHello))
	}
	s.preHelloUID[uid]++
	return ""
}

func (s *Supervisor) releasePreHello(uid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	<-s.preHello
	if s.preHelloUID[uid]--; s.preHelloUID[uid] <= 0 {
		delete(s.preHelloUID, uid)
	}
}

// helloRefusalID is the id of an Error message that answers a hello (which
// has none): the parent refuses the client, and says why.
const helloRefusalID = 1

// takeNamed reserves a place for a named-socket session of uid
// (Config.MaxNamedSessions, MaxNamedSessionsPerUID), or says why there is
// none. releaseNamed gives it back when the session ends.
func (s *Supervisor) takeNamed(uid uint32) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.namedUID[uid]; n >= s.cfg.MaxNamedSessionsPerUID {
		return fmt.Sprintf("uid %d has %d named-socket sessions, the most allowed (MaxNamedSessionsPerUID)", uid, n)
	}
	if s.named >= s.cfg.MaxNamedSessions {
		return fmt.Sprintf("%d named-socket sessions, the most allowed (MaxNamedSessions)", s.named)
	}
	s.named++
	s.namedUID[uid]++
	return ""
}

func (s *Supervisor) releaseNamed(uid uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.named--
	if s.namedUID[uid]--; s.namedUID[uid] <= 0 {
		delete(s.namedUID, uid)
	}
}

// logNamedRefusal logs a refused named-socket peer: the first
// refusalLogBurst of the supervisor, then one in refusalLogEvery, so that
// peers that connect again and again, however many users they are, cannot
// flood the log.
func (s *Supervisor) logNamedRefusal(cred *peercred.Cred, reason error) {
	if n := s.namedRefusals.Add(1); logRefusal(n) {
		s.log().Warn("privsep: named-socket peer refused", "pid", cred.PID, "uid", cred.UID, "gid", cred.GID,
			"reason", reason, "count", n)
	}
}

// processAttrs are the log attributes of a worker's attestation (Peer.Process):
// the process, or why it could not be read.
func processAttrs(p *peercred.Process, err error) []any {
	if p == nil {
		return []any{"attest_err", err}
	}
	return []any{"process", p.String()}
}
