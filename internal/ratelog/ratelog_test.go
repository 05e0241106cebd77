package ratelog

import (
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// summaries collects what a Limiter reports.
type summaries struct {
	mu sync.Mutex
	m  map[int]uint64
	n  int // calls
}

func (s *summaries) add(key int, dropped uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = make(map[int]uint64)
	}
	s.m[key] += dropped
	s.n++
}

func (s *summaries) get() (map[int]uint64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[int]uint64)
	for k, v := range s.m {
		m[k] = v
	}
	return m, s.n
}

func TestBurstThenCountPerKey(t *testing.T) {
	var s summaries
	l := &Limiter[int]{Burst: 3, Interval: time.Hour, Summary: s.add}
	allowed := map[int]int{}
	for range 100 {
		for key := range 3 {
			if l.Allow(key) {
				allowed[key]++
			}
		}
	}
	if diff := cmp.Diff(map[int]int{0: 3, 1: 3, 2: 3}, allowed); diff != "" {
		t.Errorf("events allowed per key (-want +got):\n%s", diff)
	}
	if m, _ := s.get(); len(m) != 0 {
		t.Errorf("summaries before the interval ended and before Close: %v", m)
	}
	l.Close()
	l.Close() // idempotent
	m, calls := s.get()
	if diff := cmp.Diff(map[int]uint64{0: 97, 1: 97, 2: 97}, m); diff != "" {
		t.Errorf("dropped per key at Close (-want +got):\n%s", diff)
	}
	if calls != 3 {
		t.Errorf("%d summaries, want one per key", calls)
	}
	if !l.Allow(0) {
		t.Error("Allow after Close = false, want true (nothing may be counted any more)")
	}
}

// TestSummaryWithoutFurtherEvents: the count is reported once the interval
// has passed, though no event comes after the flood.
func TestSummaryWithoutFurtherEvents(t *testing.T) {
	var s summaries
	l := &Limiter[int]{Burst: 1, Interval: 50 * time.Millisecond, Summary: s.add}
	defer l.Close()
	for range 10 {
		l.Allow(7)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m, _ := s.get(); m[7] == 9 {
			break
		}
		if time.Now().After(deadline) {
			m, _ := s.get()
			t.Fatalf("summaries after 10s: %v, want 9 dropped for key 7", m)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A new interval: a burst in full again.
	if !l.Allow(7) {
		t.Error("the first event of a new interval was not allowed")
	}
}

// TestMaxKeys: many keys keep the memory bounded, and the counts of keys
// forgotten to make room are reported, not lost.
func TestMaxKeys(t *testing.T) {
	var s summaries
	l := &Limiter[int]{Burst: 1, Interval: time.Hour, MaxKeys: 16, Summary: s.add}
	const keys, events = 1000, 3
	allowed := 0
	for key := range keys {
		for range events {
			if l.Allow(key) {
				allowed++
			}
		}
		l.mu.Lock()
		n := len(l.keys)
		l.mu.Unlock()
		if n > 16 {
			t.Fatalf("%d keys kept, want at most 16", n)
		}
	}
	l.Close()
	m, _ := s.get()
	var dropped uint64
	for _, d := range m {
		dropped += d
	}
	if got := uint64(allowed) + dropped; got != keys*events {
		t.Errorf("%d allowed + %d dropped = %d, want %d", allowed, dropped, got, keys*events)
	}
}

// TestConcurrent: under concurrent use, every event is allowed or counted.
func TestConcurrent(t *testing.T) {
	var s summaries
	l := &Limiter[int]{Burst: 2, Interval: time.Millisecond, MaxKeys: 4, Summary: s.add}
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	const goroutines, events = 8, 2000
	for g := range goroutines {
		wg.Go(func() {
			n := 0
			for i := range events {
				if l.Allow((g + i) % 6) {
					n++
				}
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		})
	}
	wg.Wait()
	l.Close()
	m, _ := s.get()
	var dropped uint64
	for _, d := range m {
		dropped += d
	}
	if got := uint64(allowed) + dropped; got != goroutines*events {
		t.Errorf("%d allowed + %d dropped = %d, want %d", allowed, dropped, got, goroutines*events)
	}
}
