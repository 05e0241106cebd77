// Package ratelog bounds the log lines that others can cause: a peer that
// is refused thousands of times a second gets its first few refusals logged
// in full, and the rest counted and reported in one summary line per
// interval, per key (a peer's UID, say).
//
// The memory is bounded too: a Limiter keeps at most MaxKeys keys, and
// forgets the oldest (after reporting what it dropped for it) to make room.
// No count is lost: a summary is written once an interval has passed after
// a line was dropped, even if no other event comes, and Close writes those
// still pending.
package ratelog

import (
	"sync"
	"time"
)

// Defaults of a Limiter.
const (
	DefaultBurst    = 5
	DefaultInterval = 10 * time.Second
	DefaultMaxKeys  = 4096
)

// Limiter decides, per key, which events are logged. Set its fields before
// the first Allow; the zero value of each field means its default. Its
// methods are safe for concurrent use.
type Limiter[K comparable] struct {
	// Burst is the number of events of a key logged in full per interval.
	Burst int
	// Interval is how long a key's interval lasts, from its first event.
	Interval time.Duration
	// MaxKeys bounds the keys kept.
	MaxKeys int
	// Summary is called, without the Limiter's lock held, with a key and
	// the number of its events that were not logged, at most once per
	// interval and key, and for every key with a count at Close. It must
	// not call the Limiter.
	Summary func(key K, dropped uint64)

	mu     sync.Mutex
	keys   map[K]*entry
	timer  *time.Timer    // armed while counts wait for their summary
	firing sync.WaitGroup // the armed timer, until its function has run
	closed bool
}

type entry struct {
	start   time.Time // of the key's interval
	n       int       // events logged in it
	dropped uint64    // events not logged, not yet summarized
}

type pending[K comparable] struct {
	key     K
	dropped uint64
}

// Allow reports whether an event of key should be logged in full. If not,
// it is counted for the key's next summary.
func (l *Limiter[K]) Allow(key K) bool {
	now := time.Now()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return true // a last accept after Close: log it, count nothing
	}
	if l.keys == nil {
		l.keys = make(map[K]*entry)
	}
	var evicted []pending[K]
	e := l.keys[key]
	if e == nil {
		if len(l.keys) >= l.maxKeys() {
			evicted = l.evict(now)
		}
		e = &entry{start: now}
		l.keys[key] = e
	} else if now.Sub(e.start) >= l.interval() {
		e.start, e.n = now, 0 // a new interval; its count waits for the timer
	}
	ok := e.n < l.burst()
	if ok {
		e.n++
	} else {
		e.dropped++
		if l.timer == nil {
			l.firing.Add(1)
			l.timer = time.AfterFunc(l.interval(), l.tick)
		}
	}
	l.mu.Unlock()
	l.report(evicted)
	return ok
}

// evict makes room for a key: it forgets the keys whose interval is over and
// that have nothing to report, or else the one whose interval began first,
// and returns its count if it had one. l.mu is held.
func (l *Limiter[K]) evict(now time.Time) []pending[K] {
	var oldest K
	var oldestEntry *entry
	for k, e := range l.keys {
		if e.dropped == 0 && now.Sub(e.start) >= l.interval() {
			delete(l.keys, k)
			continue
		}
		if oldestEntry == nil || e.start.Before(oldestEntry.start) {
			oldest, oldestEntry = k, e
		}
	}
	if len(l.keys) < l.maxKeys() || oldestEntry == nil {
		return nil
	}
	delete(l.keys, oldest)
	if oldestEntry.dropped == 0 {
		return nil
	}
	return []pending[K]{{oldest, oldestEntry.dropped}}
}

// tick reports the counts that waited an interval, and forgets the keys
// whose interval is over.
func (l *Limiter[K]) tick() {
	defer l.firing.Done()
	l.mu.Lock()
	l.timer = nil
	p := l.take(time.Now())
	l.mu.Unlock()
	l.report(p)
}

// take returns the counts to report and resets them; it forgets the keys
// whose interval ended before now. l.mu is held.
func (l *Limiter[K]) take(now time.Time) []pending[K] {
	var p []pending[K]
	for k, e := range l.keys {
		if e.dropped > 0 {
			p = append(p, pending[K]{k, e.dropped})
			e.dropped = 0
		}
		if now.Sub(e.start) >= l.interval() {
			delete(l.keys, k)
		}
	}
	return p
}

// Close reports every count not yet reported and stops the timer; it
// returns once no Summary call of the Limiter is running. Events after
// Close are all allowed. Close is idempotent.
func (l *Limiter[K]) Close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		l.firing.Wait()
		return
	}
	l.closed = true
	if l.timer != nil && l.timer.Stop() {
		l.firing.Done() // it will not run
	}
	l.timer = nil
	p := l.take(time.Now().Add(l.interval())) // forget every key
	l.mu.Unlock()
	l.report(p)
	l.firing.Wait()
}

func (l *Limiter[K]) report(p []pending[K]) {
	if l.Summary == nil {
		return
	}
	for _, p := range p {
		l.Summary(p.key, p.dropped)
	}
}

func (l *Limiter[K]) burst() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return DefaultBurst
}

func (l *Limiter[K]) interval() time.Duration {
	if l.Interval > 0 {
		return l.Interval
	}
	return DefaultInterval
}

func (l *Limiter[K]) maxKeys() int {
	if l.MaxKeys > 0 {
		return l.MaxKeys
	}
	return DefaultMaxKeys
}
