//go:build linux

package privsep

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/wire"
)

// Supervisor is the privileged parent: it spawns and supervises workers,
// verifies them, and serves their calls under each role's policy. Its methods
// are safe for concurrent use. Call [Supervisor.Shutdown] when done.
type Supervisor struct {
	cfg Config
	lim wire.Limits
	err error // a Config error, reported by Spawn and ListenUnix

	ctx    context.Context // ends at Shutdown: handlers' contexts derive from it
	cancel context.CancelCauseFunc

	// closingCtx ends when Shutdown begins (closingCh is its Done).
	closingCtx context.Context
	closeStart context.CancelFunc
	closingCh  <-chan struct{}
	preHello   chan struct{} // named-socket connections waiting for their hello
	// preHelloUID counts them per user; guarded by mu.
	preHelloUID map[uint32]int
	// named counts the named-socket sessions from admission to their
	// end, namedUID per user; guarded by mu.
	named    int
	namedUID map[uint32]int
	// namedRefusals counts refused named-socket peers, for log rate
	// limiting.
	namedRefusals atomic.Uint64

	spawner *spawner

	mu sync.Mutex
	// handlers is replaced, never changed (Handle, under mu): every
	// call reads it, without a lock.
	handlers  atomic.Pointer[map[string]handlerFunc]
	procs     map[*Process]struct{}
	conns     map[*session]struct{}
	listeners map[*peercred.Listener]struct{}
	closing   bool
	wg        sync.WaitGroup // every goroutine the supervisor starts

	once onceTable // the Once operations used, by process (once.go)
}

// New returns a Supervisor with the given configuration.
func New(cfg Config) *Supervisor {
	ctx, cancel := context.WithCancelCause(context.Background())
	s := &Supervisor{
		cfg:       cfg,
		ctx:       ctx,
		cancel:    cancel,
		procs:     make(map[*Process]struct{}),
		conns:     make(map[*session]struct{}),
		listeners: make(map[*peercred.Listener]struct{}),
	}
	s.closingCtx, s.closeStart = context.WithCancel(context.Background())
	s.closingCh = s.closingCtx.Done()
	s.preHello = make(chan struct{}, maxPreHello)
	s.preHelloUID = make(map[uint32]int)
	s.namedUID = make(map[uint32]int)
	s.lim, s.err = cfg.limits()
	if s.err == nil {
		s.cfg.Roles, s.err = clonePolicies(cfg.Roles)
	}
	if cfg.MaxInFlight <= 0 {
		s.cfg.MaxInFlight = 64
	}
	if cfg.MaxNamedSessions <= 0 {
		s.cfg.MaxNamedSessions = 256
	}
	if cfg.MaxNamedSessionsPerUID <= 0 {
		s.cfg.MaxNamedSessionsPerUID = 32
	}
	return s
}

// clonePolicies checks the roles' policies and copies them, so that a
// caller that changes its Config later changes nothing here. A rule whose
// path is not absolute and clean (an empty one, from a setting left unset)
// is an error: it would otherwise be matched against what workers ask for.
func clonePolicies(roles map[string]Policy) (map[string]Policy, error) {
	out := make(map[string]Policy, len(roles))
	for role, p := range roles {
		for i, r := range p.Files {
			if !cleanAbs(r.Path) {
				return nil, fmt.Errorf("role %q: Files[%d]: path %q is not absolute and clean", role, i, r.Path)
			}
		}
		p.Files = slices.Clone(p.Files)
		p.Listen = slices.Clone(p.Listen)
		p.Ops = maps.Clone(p.Ops)
		out[role] = p
	}
	return out, nil
}

// Handle registers h for the user-defined operation op. Which roles may call
// it is up to their [Policy.Ops]. It panics on an invalid or built-in name.
//
// h returns the reply payload and descriptors to send back; the supervisor
// closes the descriptors once they are sent (or could not be). An error is
// sent to the worker as a [*CallError]; wrap [ErrDenied] to signal a policy
// refusal (logged at warn level) rather than a failure. The context ends
// when the worker goes away (with a cause wrapping [ErrWorkerGone]) or the
// supervisor shuts down. h runs on the goroutine that read its request. It
// may block: the worker's next request is then read by another goroutine
// within a few milliseconds (2 to 4).
func (s *Supervisor) Handle(op string, h func(ctx context.Context, req *Request) (payload []byte, files []*os.File, err error)) {
	if !validName(op) || reservedOp(op) {
		panic(fmt.Sprintf("privsep: Handle: invalid or built-in operation name %q", op))
	}
	if h == nil {
		panic("privsep: Handle: nil handler for " + op)
	}
	wire.Intern(op) // its requests then decode without allocating the name
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string]handlerFunc{op: h}
	if old := s.handlers.Load(); old != nil {
		m = maps.Clone(*old)
		m[op] = h
	}
	s.handlers.Store(&m)
}

func (s *Supervisor) log() *slog.Logger {
	if s.cfg.Logger != nil {
		return s.cfg.Logger
	}
	return slog.Default()
}

// policy returns the role's policy (the zero Policy for an unknown role).
func (s *Supervisor) policy(role string) Policy {
	return s.cfg.Roles[role]
}

// maxPreHello caps the named-socket connections that have not yet said
// hello: each costs a goroutine and a descriptor for up to 10 seconds.
const maxPreHello = 64

// Shutdown stops the supervisor: named sockets close, every worker is asked
// to stop (its context ends) and, if it has not exited when ctx ends, killed.
// Handlers' contexts end. Shutdown returns when every worker is reaped and
// every goroutine of the supervisor has ended; the error is ctx's if workers
// had to be killed.
func (s *Supervisor) Shutdown(ctx context.Context) error {
	s.closeStart()
	s.mu.Lock()
	s.closing = true
	procs := make([]*Process, 0, len(s.procs))
	for p := range s.procs {
		procs = append(procs, p)
	}
	listeners := make([]*peercred.Listener, 0, len(s.listeners))
	for l := range s.listeners {
		listeners = append(listeners, l)
	}
	conns := make([]*session, 0, len(s.conns))
	for c := range s.conns {
		if c.kill == nil { // named-socket sessions; spawned ones end with their process
			conns = append(conns, c)
		}
	}
	s.mu.Unlock()

	for _, l := range listeners {
		l.Close()
	}
	for _, c := range conns {
		// Stop is a courtesy: a client whose socket is full (one that
		// does not read) would hold Shutdown for Config.WriteTimeout,
		// one after another. Its session ends either way.
		c.mc.writeNow(&wire.Msg{Kind: wire.KindStop})
		c.end(fmt.Errorf("%w: supervisor shutting down", ErrUnavailable))
	}
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Stop(ctx)
		}()
	}
	wg.Wait()
	err := ctx.Err()
	// Stop returns when ctx ends even if a worker is still being killed;
	// wait for every process to be reaped, whatever ctx says.
	for _, p := range procs {
		<-p.done
	}
	s.cancel(fmt.Errorf("%w", ErrUnavailable))
	s.wg.Wait()
	s.mu.Lock()
	sp := s.spawner
	s.spawner = nil
	s.mu.Unlock()
	if sp != nil {
		sp.stop()
	}
	if err != nil {
		return fmt.Errorf("privsep: shutdown: workers killed: %w", err)
	}
	return nil
}
