package benchpair

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestRunAlternates(t *testing.T) {
	var calls []string
	r, err := Run(4,
		Timed(func() error { calls = append(calls, "ours"); return nil }),
		Timed(func() error { calls = append(calls, "base"); return nil }))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"ours", "base", "base", "ours", "ours", "base", "base", "ours"}
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if r.N != 4 {
		t.Errorf("N = %d, want 4", r.N)
	}
}

func TestRunStopsAtError(t *testing.T) {
	boom := errors.New("boom")
	n := 0
	_, err := Run(10, Timed(func() error { n++; return nil }), Timed(func() error {
		if n == 3 {
			return boom
		}
		return nil
	}))
	if !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want %v", err, boom)
	}
	if n != 3 {
		t.Errorf("ours ran %d times, want 3 (it stops at the error)", n)
	}
}

// The durations are the ones the Ops report, whatever else they take.
func TestRunTakesOpsDurations(t *testing.T) {
	i := 0
	r, err := Run(3, func() (time.Duration, error) {
		i++
		return time.Duration(10 * i), nil
	}, func() (time.Duration, error) { return 7, nil })
	if err != nil {
		t.Fatal(err)
	}
	want := Result{N: 3, OursMedian: 20, BaseMedian: 7, OursMean: 20, BaseMean: 7}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("Run (-want +got):\n%s", diff)
	}
}

func TestRunNothing(t *testing.T) {
	r, err := Run(0, nil, nil)
	if err != nil || r != (Result{}) {
		t.Errorf("Run(0) = %+v, %v; want nothing", r, err)
	}
}

func TestMedianMean(t *testing.T) {
	for _, tt := range []struct {
		d            []time.Duration
		median, mean float64
	}{
		{[]time.Duration{5}, 5, 5},
		{[]time.Duration{9, 1, 5}, 5, 5},
		{[]time.Duration{1, 2, 3, 100}, 2.5, 26.5},
		{[]time.Duration{3, 1, 1000, 2, 4}, 3, 202},
	} {
		mn := mean(tt.d) // before median sorts tt.d
		if got := median(tt.d); got != tt.median {
			t.Errorf("median(%v) = %v, want %v", tt.d, got, tt.median)
		}
		if mn != tt.mean {
			t.Errorf("mean(%v) = %v, want %v", tt.d, mn, tt.mean)
		}
	}
}

func TestReport(t *testing.T) {
	r := Result{N: 10, OursMedian: 110, BaseMedian: 100, OursMean: 300, BaseMean: 200}
	res := testing.Benchmark(func(b *testing.B) { r.Report(b, "ours", "raw") })
	want := map[string]float64{
		"ns/op": 500, "ratio": 1.1, "mean-ratio": 1.5,
		"ours-p50-ns": 110, "raw-p50-ns": 100, "ours-ns/op": 300, "raw-ns/op": 200,
	}
	if diff := cmp.Diff(want, res.Extra, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
		t.Errorf("reported metrics (-want +got):\n%s", diff)
	}
}
