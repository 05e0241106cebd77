//go:build linux

package privsep

import (
	"context"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The hot path. A connection between a worker and its parent is not in Go's
// network poller. The goroutine that needs the next message reads it
// itself, blocking in recvmsg(2) as a hand-written C program would: the calling goroutine in the worker, the reader of the session in
// the parent, which also runs the handler of what it read. Through the
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

// parker is the epoll instance in which idle connections wait. One serves
// the whole process; its goroutine lives as long as the process, as Go's
// own poller does.
//
// Arming is lazy where it would otherwise cost two epoll_ctl(2) per call:
// armSoon asks for the connection to be armed, and the sweeper arms it at its
// next sweep (within a sweepTick) unless armCancel came first. A worker between calls,
// or a parent's handler, that takes longer than that is parked as before;
// one that does not costs no system call.
type parker struct {
	once sync.Once
	err  error
	epfd int

	mu    sync.Mutex
	next  uint32
	conns map[uint32]*msgConn
	waits map[uint32]chan struct{} // await's

	sweeping atomic.Bool // the sweeper runs
}

var parking parker

// sweepTick is how often the sweeper looks at the connections waiting to be
// armed.
const sweepTick = 2 * time.Millisecond

// Lazy arming states (msgConn.lazy).
const (
	lazyNone   uint32 = iota
	lazyWanted        // armSoon
	lazyArmed         // the sweeper armed it
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
		p.conns = make(map[uint32]*msgConn)
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
			if mc := p.conns[key]; mc != nil {
				fn = mc.onMsg
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

// add registers mc's descriptor fd, disarmed.
func (p *parker) add(mc *msgConn, fd int) error {
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
	mc.key = key
	p.conns[key] = mc
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

// sweeper arms, every sweepTick, the connections that want it. It ends
// after a while with nothing to do.
func (p *parker) sweeper() {
	var arm []*msgConn
	idle := 0
	for {
		time.Sleep(sweepTick)
		busy := false
		p.mu.Lock()
		for _, mc := range p.conns {
			if mc.lazy.Load() == lazyWanted {
				if mc.lazy.CompareAndSwap(lazyWanted, lazyArmed) {
					arm = append(arm, mc)
				}
				busy = true
			}
		}
		p.mu.Unlock()
		for i, mc := range arm {
			if !mc.arm() {
				// Out of kernel memory, say: try again next time.
				mc.lazy.CompareAndSwap(lazyArmed, lazyWanted)
			}
			arm[i] = nil
		}
		arm = arm[:0]
		if busy {
			idle = 0
			continue
		}
		if idle++; idle < 50 {
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
	for _, mc := range p.conns {
		if mc.lazy.Load() == lazyWanted {
			return true
		}
	}
	return false
}
