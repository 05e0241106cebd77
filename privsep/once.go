//go:build linux

package privsep

import (
	"errors"
	"fmt"
	"sync"

	"github.com/peercred/peercred/internal/proc"
)

// Operations and rules allowed once ([OpRule.Once], [PathRule.Once],
// [ListenRule.Once]) are allowed once per process and role: the supervisor
// remembers what a process used across all its connections (a process
// admitted over a named socket may open many, and close them all and come
// back), for as long as the process lives. A process is known by its PID
// and its start time, read from /proc under the PID and, for a process the
// supervisor did not start, checked through its pidfd afterwards, so that a
// later process that reuses the PID is never taken for it. What is
// remembered of a process that is gone is forgotten: when its last session
// ends, or at the next sweep.

// maxOnceProcs bounds the processes whose Once operations the supervisor
// remembers at a time: beyond it, the Once operations of further processes
// are refused until some are gone.
const maxOnceProcs = 1 << 16

// procKey identifies a process, and never a later one with its PID: its PID
// and its start time (clock ticks after boot, /proc/PID/stat).
type procKey struct {
	pid   int
	start uint64
}

// onceProc is what the supervisor remembers of one process.
type onceProc struct {
	key      procKey
	sessions int             // open sessions of the process
	used     map[string]bool // role and rule, as onceKey makes them
}

// onceTable is the supervisor's memory of the Once operations used, by
// process. The zero value is ready to use.
type onceTable struct {
	mu      sync.Mutex
	procs   map[procKey]*onceProc
	sweepAt int // sweep when procs grows to this
}

// attach finds or makes the entry of peer's process for one more session
// of it. The process is identified, and its entry found, under the table's
// lock, so that a sweep cannot forget a process between the two.
func (t *onceTable) attach(peer *Peer) (*onceProc, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key, err := identify(peer)
	if err != nil {
		return nil, err
	}
	p := t.procs[key]
	if p == nil {
		if len(t.procs) >= t.sweepAt {
			t.sweep()
		}
		if len(t.procs) >= maxOnceProcs {
			return nil, fmt.Errorf("the supervisor remembers the Once operations of %d processes already", len(t.procs))
		}
		if t.procs == nil {
			t.procs = make(map[procKey]*onceProc)
		}
		p = &onceProc{key: key}
		t.procs[key] = p
	}
	p.sessions++
	return p, nil
}

// detach ends one session of p's process, and forgets the process if it
// has no session left and either used nothing or is gone.
func (t *onceTable) detach(p *onceProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.sessions--; p.sessions == 0 && (len(p.used) == 0 || !alive(p.key)) {
		delete(t.procs, p.key)
	}
}

// use marks rule used by p; false if it was already.
func (t *onceTable) use(p *onceProc, rule string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p.used[rule] {
		return false
	}
	if p.used == nil {
		p.used = make(map[string]bool)
	}
	p.used[rule] = true
	return true
}

// sweep forgets the processes that have no session and are gone; the next
// sweep comes when the table has doubled. t.mu is held.
func (t *onceTable) sweep() {
	for key, p := range t.procs {
		if p.sessions == 0 && !alive(key) {
			delete(t.procs, key)
		}
	}
	t.sweepAt = max(64, 2*len(t.procs))
}

// count sweeps and returns how many processes the table remembers.
func (t *onceTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep()
	return len(t.procs)
}

// identify returns the key of peer's process. For a process the supervisor
// did not start, the pidfd must show it alive after /proc was read: it then
// held its PID all along, and what was read was its own. A spawned worker
// is the supervisor's child, whose PID is not free before it is reaped.
func identify(peer *Peer) (procKey, error) {
	if peer.PID <= 0 {
		return procKey{}, errors.New("its pid is not visible in our PID namespace")
	}
	if peer.Named && peer.PidFD == nil {
		return procKey{}, fmt.Errorf("pid %d: no pidfd (SO_PEERPIDFD, Linux 6.5) to make sure /proc/%d is still the peer", peer.PID, peer.PID)
	}
	start, err := startTime(peer.PID)
	if err != nil {
		return procKey{}, fmt.Errorf("pid %d: %w", peer.PID, err)
	}
	if peer.PidFD != nil {
		if err := pidfdAlive(peer.PidFD, peer.PID); err != nil {
			return procKey{}, fmt.Errorf("pid %d exited: %w", peer.PID, err)
		}
	}
	return procKey{pid: peer.PID, start: start}, nil
}

// alive reports whether the process of key is still there (a zombie is:
// it holds its PID until it is reaped).
func alive(key procKey) bool {
	start, err := startTime(key.pid)
	return err == nil && start == key.start
}

// startTime reads the start time of process pid from /proc/PID/stat.
func startTime(pid int) (uint64, error) {
	st, err := proc.ReadStat(pid)
	if err != nil {
		return 0, err
	}
	return st.StartTime, nil
}

// hasOnce reports whether p allows anything once.
func (p *Policy) hasOnce() bool {
	for _, r := range p.Ops {
		if r.Once {
			return true
		}
	}
	for _, r := range p.Files {
		if r.Once {
			return true
		}
	}
	for _, r := range p.Listen {
		if r.Once {
			return true
		}
	}
	return false
}

// takeOnce uses the session's process's allowance of rule (a rule of the
// session's role allowed once). It returns "" if it was there, else why
// not.
func (ss *session) takeOnce(rule string) string {
	if ss.proc == nil {
		return fmt.Sprintf("allowed once per process, and this one cannot be told apart from a later one: %v", ss.procErr)
	}
	if !ss.s.once.use(ss.proc, ss.peer.Role+"\x00"+rule) {
		return "allowed once and was used by this process"
	}
	return ""
}
