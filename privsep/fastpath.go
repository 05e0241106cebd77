//go:build linux

package privsep

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/peercred/peercred/internal/wire"
	"golang.org/x/sys/unix"
)

// The hot path. A connection between a worker and its parent is not in Go's
// network poller. The goroutine that needs the next message reads it
// itself, blocking in recvmsg(2) as a hand-written C program would: the
// calling goroutine in the worker, the reader of the session in the parent,
// which also runs the handler of what it read. Both read through a reader,
// which holds the turn to read and parks the connection. Through the
// network poller every message cost a wake-up of the thread in epoll_wait
// and a hand-off to another goroutine on each side (BENCHMARKS.md: 4.7x the
// raw round trip, most of it futex and epoll_pwait).
//
// While nobody reads a connection (an idle worker, a parent whose handler
// is running), it is parked in an epoll instance of this package with
// EPOLLONESHOT, and that instance sits in Go's poller: a message that
// arrives then starts a reader. An idle connection costs no thread and no
// goroutine; a busy one costs no poller wake-up. Arming and disarming are
// one epoll_ctl(2) each.
//
// The exception: while a process has more session readers than Ps, a
// session's reader waits in Go's poller after all, on a duplicate of the
// descriptor (reader.pollRecv): then the poller's wake-ups are shared by
// many connections, and a blocked recvmsg would hold one of the few Ps.

// sock is a socket descriptor outside Go's poller, shared by the goroutines
// that read and write it. Every system call on it holds a reference, so the
// descriptor is closed, and its number reused, only once none is using it.
type sock struct {
	mu   sync.Mutex
	fd   int
	refs int  // the owner's, plus one per system call in progress
	down bool // shut down
	gone bool // the owner let go: no new calls
}

// get returns the descriptor for one system call; put must follow.
func (s *sock) get() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone {
		return -1, net.ErrClosed
	}
	s.refs++
	return s.fd, nil
}

func (s *sock) put() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.refs--; s.refs == 0 {
		unix.Close(s.fd)
		s.fd = -1
	}
}

// shutdown shuts the socket down both ways: every poll and recvmsg on it
// returns, writes fail, and the peer reads end of file.
func (s *sock) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.down && !s.gone {
		s.down = true
		unix.Shutdown(s.fd, unix.SHUT_RDWR)
	}
}

// release shuts the socket down and drops the owner's reference.
func (s *sock) release() {
	s.shutdown()
	s.mu.Lock()
	if s.gone {
		s.mu.Unlock()
		return
	}
	s.gone = true
	s.mu.Unlock()
	s.put()
}

// pollIn waits until fd is readable (or hung up), or wake is; a readable
// wake is drained.
func pollIn(fd, wake int) {
	fds := [2]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
	if _, err := unix.Poll(fds[:], -1); err == nil && fds[1].Revents != 0 {
		var b [8]byte
		unix.Read(wake, b[:])
	}
}

// reader is the turn to read one hot connection, and where the connection
// waits while nobody reads it. At most one goroutine holds the turn and
// reads (receive); while none does, the connection is parked, and the next
// message calls the function given to serve, which takes the turn (woken)
// and reads. Worker and session read only through it:
//
//   - take: a goroutine that wants to read takes a free turn (a worker's
//     call, to read its own reply);
//   - woken: the parked connection's function takes it;
//   - receive: the holder reads one message;
//   - busy, resume: the holder runs something that may take long (a
//     session's handler): meanwhile the connection is parked lazily, and a
//     message lets another goroutine take the turn;
//   - park: the holder gives the turn up and the connection is parked, at
//     once or lazily (within two of the sweeper's ticks, unless take comes first: calls
//     that come back to back then cost no epoll_ctl(2) at all).
//
// Handing the turn from one goroutine to another without parking (a
// worker's callers, each waiting for its reply) is up to the holder: the
// turn stays taken.
type reader struct {
	mc    *msgConn
	state atomic.Int32  // turnHeld, ...
	lazy  atomic.Uint32 // lazy parking: lazyNone, ...
	kinds uint32        // the kinds of message the peer may send, a bit each
	peer  string        // "worker" or "parent", for errors
	onMsg func()        // the parker's call; guarded by parking.mu
	tick  time.Duration // the sweeper's tick for this connection; guarded by parking.mu
	// yielded is when the holder last looked at going through the Go
	// scheduler (yield); only the holder uses it.
	yielded time.Time
}

// States of the turn (reader.state).
const (
	turnHeld   int32 = iota // a goroutine reads
	turnParked              // nobody reads; the next message calls onMsg
	turnBusy                // the holder is busy; the next message calls onMsg
	turnClosed              // the connection is ending
)

// serve sets the function that a message on the parked connection calls,
// the kinds of message peer ("worker", "parent") may send, and how soon a
// turn given up lazily is parked: within two ticks (sweepTick or
// workerSweepTick). fn should call woken and, if that is true, read.
func (r *reader) serve(fn func(), peer string, tick time.Duration, kinds ...wire.Kind) {
	r.peer = peer
	for _, k := range kinds {
		r.kinds |= 1 << k
	}
	parking.mu.Lock()
	r.onMsg = fn
	r.tick = tick
	parking.mu.Unlock()
}

// receive reads one message; only the holder of the turn calls it. If wait
// is true it waits for one, up to hotWait (the socket's SO_RCVTIMEO), in
// recvmsg itself; ok is false if none came. This is the connection's one
// receive path (msgConn.recv: recvmsg, control messages, truncation,
// decoding), and where a message breaks the protocol it returns a
// *protocolError, which its caller ends the connection with (the session:
// log, disconnect, kill; the worker: fail every call). A message is the
// caller's, its descriptors included, only when err is nil: on every error
// each descriptor that came is closed here.
func (r *reader) receive(wait bool) (m inMsg, ok bool, err error) {
	return r.check(r.mc.recv(wait))
}

// check refuses a message of a kind the peer may not send.
func (r *reader) check(m inMsg, ok bool, err error) (inMsg, bool, error) {
	if err == nil && ok && r.kinds&(1<<m.Kind) == 0 {
		m.closeFiles()
		return inMsg{}, true, violation("%s sent a %v message", r.peer, m.Kind)
	}
	return m, ok, err
}

// pollRecv is receive for a holder that must not hold a thread while it
// waits (a session's reader while the process has more of them than Ps):
// it waits for the next message in Go's own poller, up to hotWait, and
// reads it. ok is false if none came, or if the connection could not be
// put in the poller; the caller then parks it as usual.
//
// The connection joins Go's poller the first time (a duplicate of its
// descriptor, netpoll) and stays in it, for the next waits, until unpoll:
// in Go's poller every message that arrives wakes the poller, needed or
// not, which costs a reader that waits in recvmsg itself a thread's
// wake-up per message.
func (r *reader) pollRecv() (m inMsg, ok bool, err error) {
	np := &r.mc.np
	if np.f == nil && !np.open(&r.mc.sk) {
		return m, false, nil
	}
	// The deadline is moved only once half of hotWait has passed: a
	// reader that found nothing waits between hotWait/2 and hotWait.
	if now := time.Now(); now.Sub(np.used) >= hotWait/2 {
		np.used = now
		if np.f.SetReadDeadline(now.Add(hotWait)) != nil {
			return m, false, nil
		}
	}
	werr := np.rc.Read(func(fd uintptr) bool {
		m, ok, err = r.mc.recvFD(int(fd), false)
		return ok
	})
	if werr != nil {
		// The deadline: nothing else ends the wait, as f is closed
		// only by unpoll and release, on the holder of the turn or
		// once nobody reads. Nothing was read.
		return inMsg{}, false, nil
	}
	return r.check(m, ok, err)
}

// unpoll takes the connection out of Go's poller (pollRecv), if it is in
// it; if idle is true, only once its read deadline was last set hotWait
// ago (so 5 to 10 ms after its last wait there). Only the holder of the
// turn calls it, or release once nobody reads.
func (r *reader) unpoll(idle bool) {
	np := &r.mc.np
	if np.f == nil || idle && time.Since(np.used) < hotWait {
		return
	}
	np.close()
}

// netpoll is a connection's place in Go's own poller (reader.pollRecv): a
// duplicate of its descriptor, in an *os.File.
type netpoll struct {
	f    *os.File
	rc   syscall.RawConn
	used time.Time // when f's read deadline was last set, to hotWait later
}

// close takes the connection out of Go's poller, if it is in it.
func (np *netpoll) close() {
	if np.f != nil {
		np.f.Close()
		// A new f has no deadline: the next pollRecv sets one.
		*np = netpoll{}
	}
}

// open puts the socket of sk in Go's poller.
func (np *netpoll) open(sk *sock) bool {
	fd, err := sk.get()
	if err != nil {
		return false
	}
	d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	sk.put()
	if err != nil {
		return false
	}
	// os.NewFile puts only a non-blocking descriptor in Go's poller. The
	// file description (the socket) is shared with sk's descriptor, on
	// which a reader waits in recvmsg: blocking again once registered.
	// Meanwhile nobody waits on it: only the holder of the turn reads,
	// and writers never wait in sendmsg (MSG_DONTWAIT). pollRecv's reads
	// say MSG_DONTWAIT themselves.
	if err := unix.SetNonblock(d, true); err != nil {
		unix.Close(d)
		return false
	}
	f := os.NewFile(uintptr(d), "privsep-conn")
	rc, err := f.SyscallConn()
	if err == nil {
		err = unix.SetNonblock(d, false)
	}
	if err == nil {
		// Is it in the poller? A file that is not has no deadlines.
		err = f.SetReadDeadline(time.Time{})
	}
	if err != nil {
		// Should the second fcntl have failed, the socket stays
		// non-blocking: a reader's recvmsg then returns at once and it
		// parks the connection, sooner than it would have.
		f.Close()
		return false
	}
	np.f, np.rc = f, rc
	return true
}

// yieldEvery is how often a reader that waits in recvmsg back to back goes
// through the Go scheduler (reader.yield).
const yieldEvery = 2 * time.Millisecond

// yield lets the Go scheduler run, once every yieldEvery, before the holder
// waits in recvmsg, if only is true. A goroutine that leaves a blocking
// system call only to enter the next one (a worker calling in a loop:
// sendmsg, recvmsg; a session's reader serving one such worker) never goes
// through the scheduler, and after 10 ms Go's sysmon takes it for one that
// runs too long even though it is blocked: it sends its thread a
// preemption signal (which interrupts recvmsg) and takes its P, and then
// polls every 20 µs again, each poll a timer interrupt and two context
// switches. That cost the eight workers of BenchmarkThroughput a tenth to
// a fifth of their CPU per call, and BenchmarkCall's two processes a fifth
// (BENCHMARKS.md).
//
// only says whether yielding is cheap: a session's reader yields only while
// there are no more readers in the process than Ps. More of them go through
// the scheduler anyway, and one that yields then waits behind the others
// for a P that a blocked recvmsg holds (Throughput was slower).
func (r *reader) yield(only func() bool) {
	now := time.Now()
	if now.Sub(r.yielded) < yieldEvery {
		return
	}
	r.yielded = now
	numProcs.Store(int32(runtime.GOMAXPROCS(0)))
	if only == nil || only() {
		runtime.Gosched()
	}
}

// take takes the turn if nobody holds it, and undoes a lazy park.
func (r *reader) take() bool {
	if !r.state.CompareAndSwap(turnParked, turnHeld) {
		return false
	}
	if r.lazy.Swap(lazyNone) == lazyArmed {
		r.disarm()
	}
	return true
}

// woken is take for onMsg: the parked connection fired (its arming is
// used up), or a message came while the holder was busy.
func (r *reader) woken() bool {
	if r.state.CompareAndSwap(turnParked, turnHeld) || r.state.CompareAndSwap(turnBusy, turnHeld) {
		r.lazy.Store(lazyNone)
		return true
	}
	return false
}

// park gives the turn up. soon parks lazily; otherwise at once, and it is
// false only if the kernel refused (out of memory): the caller holds the
// turn still.
func (r *reader) park(soon bool) bool {
	// The state first: a message that fires at once finds the turn free.
	r.state.Store(turnParked)
	if soon {
		r.armSoon()
		return true
	}
	r.lazy.Store(lazyArmed) // for take's disarm
	if r.arm() {
		return true
	}
	if r.state.CompareAndSwap(turnParked, turnHeld) {
		r.lazy.Store(lazyNone)
		return false
	}
	return true // a stale wake-up took the turn meanwhile
}

// busy keeps the turn while its holder does something that may take long:
// the connection is parked lazily, and a message that comes meanwhile lets
// woken take the turn.
func (r *reader) busy() {
	r.state.Store(turnBusy)
	r.armSoon()
}

// resume ends busy: it is true if the caller holds the turn still, and
// false if another goroutine took it (or the connection is ending).
func (r *reader) resume() bool {
	if !r.state.CompareAndSwap(turnBusy, turnHeld) {
		return false
	}
	if r.lazy.Swap(lazyNone) == lazyArmed {
		r.disarm()
	}
	return true
}

// close marks the turn as ending: nobody takes it any more.
func (r *reader) close() { r.state.Store(turnClosed) }

// waitIn waits until a message (or end of file) is there, or the eventfd
// wake is readable: for a holder that must also watch something else.
func (r *reader) waitIn(wake int) {
	if fd, err := r.mc.sk.get(); err == nil {
		pollIn(fd, wake)
		r.mc.sk.put()
	}
}

// armSoon parks the connection within one or two of the sweeper's ticks, unless take
// (or resume) comes first.
func (r *reader) armSoon() {
	r.lazy.Store(lazyWanted)
	parking.sweep()
}

// arm parks the connection: the next message calls onMsg. It is false only
// if the kernel refused (a connection being let go counts as parked).
func (r *reader) arm() bool {
	fd, err := r.mc.sk.get()
	if err != nil {
		return true
	}
	defer r.mc.sk.put()
	if err := parking.arm(fd, r.mc.key); err != nil && err != unix.ENOENT {
		return false
	}
	return true
}

// disarm takes the connection out of the parker: a goroutine reads it.
func (r *reader) disarm() {
	if fd, err := r.mc.sk.get(); err == nil {
		parking.disarm(fd, r.mc.key)
		r.mc.sk.put()
	}
}

// The worker's side of the turn: its callers. The caller that holds the
// turn reads (lead) and delivers every other reply to its caller
// (dispatch); when its own comes it hands the turn to a caller still
// waiting (release), or parks the connection. A caller that gives up
// (withdraw, abandon) passes the turn on if it had it. A message that comes
// while nobody reads is read by watch.

// call is one call in flight: its reply, or the turn to read, comes on ch.
type call struct {
	ch chan reply
}

var callPool = sync.Pool{New: func() any { return &call{ch: make(chan reply, 1)} }}

type reply struct {
	payload []byte
	files   []*os.File
	err     error
	lead    bool // not a reply: the caller is now the reader
}

// lead reads as the connection's reader until the reply to id comes, and
// hands reading on. ok is false if ctx ended first.
func (w *Worker) lead(ctx context.Context, id uint32, c *call) (r reply, ok bool) {
	// Waiting in recvmsg is one system call; it returns every hotWait to
	// look at ctx. A context that can end otherwise than by the parent's
	// Stop (which ends w.ctx, and which we read ourselves) is waited for
	// in poll(2) with the eventfd that it wakes, then recvmsg.
	interruptible := ctx.Done() != nil && ctx != w.ctx
	if interruptible {
		stop := context.AfterFunc(ctx, w.interrupt)
		defer stop()
	}
	w.rd.yield(nil)
	for {
		if ctx.Err() != nil {
			w.withdraw(id, c)
			return reply{}, false
		}
		m, got, err := w.rd.receive(!interruptible)
		if err == nil && !got {
			if interruptible {
				w.rd.waitIn(w.wake)
			}
			continue
		}
		if err == nil && (m.Kind == wire.KindReply || m.Kind == wire.KindError) && m.ID == id {
			w.mu.Lock()
			delete(w.pending, id)
			w.release() // hand reading on
			w.mu.Unlock()
			return replyOf(m), true
		}
		if err == nil {
			err = w.dispatch(m)
		}
		if err != nil {
			w.finish(err) // fails every call, ours too
			return <-c.ch, true
		}
	}
}

// watch is the parker's call: a message came while no call was reading.
func (w *Worker) watch() {
	w.mu.Lock()
	if w.err != nil || !w.rd.woken() {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	for {
		m, got, err := w.rd.receive(false)
		if err == nil && !got {
			w.handOn()
			return
		}
		if err == nil {
			err = w.dispatch(m)
		}
		if err != nil {
			w.finish(err)
			return
		}
	}
}

// dispatch delivers one message that its reader did not wait for (a reply,
// an error or Stop: the reader refuses other kinds); an error ends the
// connection.
func (w *Worker) dispatch(m inMsg) error {
	switch m.Kind {
	case wire.KindReply, wire.KindError:
		w.mu.Lock()
		c, ok := w.pending[m.ID]
		delete(w.pending, m.ID)
		w.mu.Unlock()
		if !ok {
			m.closeFiles() // the caller gave up on it
			return nil
		}
		c.ch <- replyOf(m)
		return nil
	case wire.KindStop:
		w.cancel(fmt.Errorf("privsep: the parent asked the worker to stop: %w", context.Canceled))
		return nil
	}
	m.closeFiles()
	return violation("parent sent a %v message", m.Kind)
}

func replyOf(m inMsg) reply {
	r := reply{files: m.Files, payload: m.Payload}
	if m.Kind == wire.KindError {
		r = reply{err: &CallError{Code: m.Code, Msg: string(m.Payload)}}
		closeAll(m.Files) // a refusal carries none
	}
	return r
}

// handOn gives up reading: to a caller still waiting for its reply, or, if
// none is, to the parker.
func (w *Worker) handOn() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.release()
}

// release is handOn with w.mu held.
func (w *Worker) release() {
	if w.err != nil {
		return
	}
	for _, c := range w.pending {
		// Its reply has not come (or it would not be pending), so
		// nothing is in its channel.
		c.ch <- reply{lead: true}
		return
	}
	w.idleFrom = time.Now()
	if !w.rd.park(w.fast) {
		w.rd.park(true) // the kernel refused: the sweeper tries again
	}
}

// withdraw withdraws the reader's own call id and hands reading on.
func (w *Worker) withdraw(id uint32, c *call) {
	w.mu.Lock()
	delete(w.pending, id)
	w.mu.Unlock()
	w.handOn()
	callPool.Put(c) // nothing is sent to the reader's channel
}

// abandon withdraws call id, whose caller's context ended. If reading was
// handed to it meanwhile, it is handed on; a reply that came is dropped.
func (w *Worker) abandon(id uint32, c *call) {
	w.mu.Lock()
	_, pending := w.pending[id]
	delete(w.pending, id)
	w.mu.Unlock()
	var r reply
	if pending {
		// Only a turn to read can be in the channel: replies are
		// sent once a call is no longer pending.
		select {
		case r = <-c.ch:
		default:
			callPool.Put(c)
			return
		}
	} else {
		r = <-c.ch // the reply, on its way
	}
	if r.lead {
		w.handOn()
	}
	closeAll(r.files)
	callPool.Put(c)
}

// interrupt wakes the reader from its poll, to look at its context.
func (w *Worker) interrupt() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.wake >= 0 {
		unix.Write(w.wake, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}
}

// parker is the epoll instance in which idle connections wait. One serves
// the whole process; its goroutine lives as long as the process, as Go's
// own poller does.
//
// Arming is lazy where it would otherwise cost two epoll_ctl(2) per call:
// reader.armSoon asks for the connection to be armed, and the sweeper arms
// it within two sweeps (two sweepTicks) unless the reader's take or resume
// came first. A worker between calls, or a parent's handler, that
// takes longer than that is parked as before; one that does not costs no
// system call.
type parker struct {
	once sync.Once
	err  error
	epfd int

	mu    sync.Mutex
	next  uint32
	conns map[uint32]*reader
	waits map[uint32]chan struct{} // await's

	sweeping atomic.Bool // the sweeper runs
}

var parking parker

// sweepTick is how often the sweeper looks at the connections waiting to be
// armed, while a session is among them: a request that comes while its
// worker's handler runs is read within two sweepTicks.
const sweepTick = 2 * time.Millisecond

// workerSweepTick is the sweeper's tick in a process with only workers'
// connections (no session), where lazy parking only delays the parent's
// Stop to a worker that calls back to back. Each tick wakes the process's
// Go runtime (several threads: sysmon, the netpoller, a spinning M): with
// a 2 ms tick, eight workers calling at once and their parent spent about
// a quarter more CPU per call than with a 20 ms one (BENCHMARKS.md).
const workerSweepTick = 20 * time.Millisecond

// sweepLinger is how long the sweeper runs on with nothing to do.
const sweepLinger = 100 * time.Millisecond

// Lazy arming states (reader.lazy). The sweeper arms a connection only
// once it has wanted it for a whole sweepTick, in two steps: a turn given
// up for less than that (a handler that answers at once, a worker between
// two calls) costs no epoll_ctl(2), and none of the spurious wake-ups of
// an armed connection whose reader is back already.
const (
	lazyNone   uint32 = iota
	lazyWanted        // armSoon
	lazyMarked        // wanted at the sweeper's last look: armed at its next
	lazyArmed         // armed (by the sweeper, or by park at once)
)

func (p *parker) init() error {
	p.once.Do(func() {
		fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			p.err = os.NewSyscallError("epoll_create1", err)
			return
		}
		if err := unix.SetNonblock(fd, true); err != nil {
			unix.Close(fd)
			p.err = os.NewSyscallError("fcntl", err)
			return
		}
		// Non-blocking, so os.NewFile puts it in Go's poller.
		f := os.NewFile(uintptr(fd), "privsep-epoll")
		rc, err := f.SyscallConn()
		if err != nil {
			f.Close()
			p.err = err
			return
		}
		p.epfd = fd
		p.conns = make(map[uint32]*reader)
		p.waits = make(map[uint32]chan struct{})
		go p.loop(f, rc)
	})
	return p.err
}

// loop calls onMsg of each connection that has a message.
func (p *parker) loop(f *os.File, rc syscall.RawConn) {
	defer f.Close()
	events := make([]unix.EpollEvent, 64)
	for {
		var n int
		var werr error
		err := rc.Read(func(fd uintptr) bool {
			n, werr = unix.EpollWait(int(fd), events, 0)
			if werr == unix.EINTR {
				n, werr = 0, nil
			}
			return n > 0 || werr != nil
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			// Nothing the kernel documents for a valid instance:
			// say so and keep going, slowly.
			fmt.Fprintf(os.Stderr, "privsep: epoll_wait: %v\n", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		for _, ev := range events[:n] {
			key := uint32(ev.Fd)
			p.mu.Lock()
			var fn func()
			if r := p.conns[key]; r != nil {
				fn = r.onMsg
			} else if ch := p.waits[key]; ch != nil {
				delete(p.waits, key)
				close(ch)
			}
			p.mu.Unlock()
			if fn != nil {
				fn()
			}
		}
	}
}

// add registers the descriptor fd of r's connection, disarmed.
func (p *parker) add(r *reader, fd int) error {
	if err := p.init(); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	key := p.newKey()
	ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(key)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	r.mc.key = key
	p.conns[key] = r
	return nil
}

// newKey returns a key not in use; p.mu is held.
func (p *parker) newKey() uint32 {
	for {
		p.next++
		_, conn := p.conns[p.next]
		_, wait := p.waits[p.next]
		if p.next != 0 && !conn && !wait {
			return p.next
		}
	}
}

// await waits, in Go's poller and so with no thread held, until fd has one
// of events (EPOLLIN, EPOLLOUT; a hang-up or error counts too) or ctx ends.
// fd must stay open until await returns; it must not be registered with the
// parker already (a dup of a registered descriptor may be).
func (p *parker) await(ctx context.Context, fd int, events uint32) error {
	if err := p.init(); err != nil {
		return err
	}
	ch := make(chan struct{})
	p.mu.Lock()
	key := p.newKey()
	ev := unix.EpollEvent{Events: events | unix.EPOLLONESHOT, Fd: int32(key)}
	if err := unix.EpollCtl(p.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		p.mu.Unlock()
		return os.NewSyscallError("epoll_ctl", err)
	}
	p.waits[key] = ch
	p.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-ctx.Done():
		err = ctx.Err()
	}
	// Before fd is closed: an epoll entry outlives its descriptor number
	// while another descriptor shares its open file.
	p.mu.Lock()
	delete(p.waits, key)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	p.mu.Unlock()
	return err
}

// arm makes the next message on fd (or its hang-up) call its function, once.
func (p *parker) arm(fd int, key uint32) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP | unix.EPOLLONESHOT, Fd: int32(key)}
	return unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// disarm undoes arm. (The kernel still reports a hang-up, once: the
// functions tolerate a call when nothing is waiting.)
func (p *parker) disarm(fd int, key uint32) {
	ev := unix.EpollEvent{Events: unix.EPOLLONESHOT, Fd: int32(key)}
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
}

// remove unregisters fd; call it before fd is closed.
func (p *parker) remove(fd int, key uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, key)
	unix.EpollCtl(p.epfd, unix.EPOLL_CTL_DEL, fd, nil)
}

// sweep makes sure the sweeper runs.
func (p *parker) sweep() {
	if !p.sweeping.Load() && p.sweeping.CompareAndSwap(false, true) {
		go p.sweeper()
	}
}

// sweeper arms, every tick, the connections that have wanted it since its
// last look (so within two ticks of armSoon). The tick is the shortest of
// the connections' (reader.serve): sweepTick while the process has a
// session, workerSweepTick otherwise. It ends after a while with nothing to
// do.
func (p *parker) sweeper() {
	var arm []*reader
	var idle time.Duration
	tick := sweepTick
	for {
		time.Sleep(tick)
		busy := false
		next := workerSweepTick
		p.mu.Lock()
		for _, r := range p.conns {
			if r.tick != 0 && r.tick < next {
				next = r.tick
			}
			switch r.lazy.Load() {
			case lazyWanted:
				r.lazy.CompareAndSwap(lazyWanted, lazyMarked)
				busy = true
			case lazyMarked:
				if r.lazy.CompareAndSwap(lazyMarked, lazyArmed) {
					arm = append(arm, r)
				}
				busy = true
			}
		}
		p.mu.Unlock()
		for i, r := range arm {
			if !r.arm() {
				// Out of kernel memory, say: try again next time.
				r.lazy.CompareAndSwap(lazyArmed, lazyMarked)
			}
			arm[i] = nil
		}
		arm = arm[:0]
		tick = next
		if busy {
			idle = 0
			continue
		}
		if idle += tick; idle < sweepLinger {
			continue
		}
		p.sweeping.Store(false)
		// An armSoon that saw the sweeper still running, after the
		// last look: look once more.
		if !p.wanted() || !p.sweeping.CompareAndSwap(false, true) {
			return
		}
		idle = 0
	}
}

func (p *parker) wanted() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range p.conns {
		if l := r.lazy.Load(); l == lazyWanted || l == lazyMarked {
			return true
		}
	}
	return false
}
