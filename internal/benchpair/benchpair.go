// Package benchpair times an operation beside its baseline in one loop: one
// of each per round, in alternating order, each timed on its own. Whatever
// else the machine does meanwhile (other jobs, its idle states, a worker's
// warm-up) then weighs on both alike, where two benchmarks run one after
// the other each meet a different machine.
//
// It reports the ratio of the two medians: beside busy processes the means
// carry the kernel's preemptions, a few milliseconds each and some hundred a
// second, on whichever side they happen to land, and the ratio of the means
// of two one-second runs differs by more than the difference being measured
// (BenchmarkAccept: 0.93 to 1.29 in ten runs whose ratio of medians read
// 1.071 to 1.077). The means are reported too.
//
// That is a fair reading only where running the two alternately does not
// change what either costs: compare each side's mean with its mean back to
// back (BENCHMARKS.md says where it holds).
//
// It is for the project's benchmarks only.
package benchpair

import (
	"slices"
	"testing"
	"time"
)

// Result is what Run measured, in nanoseconds per operation.
type Result struct {
	N                      int     // rounds: Ops of each
	OursMedian, BaseMedian float64 // the median operation
	OursMean, BaseMean     float64
}

// An Op is one operation; it returns how long its timed part took (see
// [Timed]), so that it may leave its clean-up (stopping what it started)
// out.
type Op func() (time.Duration, error)

// Timed makes an Op that times all of f.
func Timed(f func() error) Op {
	return func() (time.Duration, error) {
		t := time.Now()
		err := f()
		return time.Since(t), err
	}
}

// Run runs ours and base n times each, one of each per round, ours first
// in every other round. It stops at the first error.
func Run(n int, ours, base Op) (Result, error) {
	do, db := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	for i := range n {
		first, second := ours, base
		if i%2 == 1 {
			first, second = base, ours
		}
		d1, err := first()
		if err != nil {
			return Result{}, err
		}
		d2, err := second()
		if err != nil {
			return Result{}, err
		}
		if i%2 == 0 {
			do, db = append(do, d1), append(db, d2)
		} else {
			db, do = append(db, d1), append(do, d2)
		}
	}
	if n == 0 {
		return Result{}, nil
	}
	return Result{
		N:          n,
		OursMedian: median(do), BaseMedian: median(db),
		OursMean: mean(do), BaseMean: mean(db),
	}, nil
}

// Ratio is the median operation of ours over the median of base.
func (r Result) Ratio() float64 { return r.OursMedian / r.BaseMedian }

// Report reports r as b's result: ns/op is one round (one of each); ratio
// is [Result.Ratio] and mean-ratio the same of the means; NAME-p50-ns and
// NAME-ns/op are each side's median and mean, named ours and base.
func (r Result) Report(b *testing.B, ours, base string) {
	b.Helper()
	if r.N == 0 || r.BaseMedian == 0 || r.BaseMean == 0 {
		b.Fatalf("benchpair: nothing measured: %+v", r)
	}
	b.ReportMetric(r.OursMean+r.BaseMean, "ns/op")
	b.ReportMetric(r.Ratio(), "ratio")
	b.ReportMetric(r.OursMean/r.BaseMean, "mean-ratio")
	b.ReportMetric(r.OursMedian, ours+"-p50-ns")
	b.ReportMetric(r.BaseMedian, base+"-p50-ns")
	b.ReportMetric(r.OursMean, ours+"-ns/op")
	b.ReportMetric(r.BaseMean, base+"-ns/op")
}

func mean(d []time.Duration) float64 {
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	return float64(sum) / float64(len(d))
}

// median sorts d.
func median(d []time.Duration) float64 {
	slices.Sort(d)
	n := len(d)
	if n%2 == 1 {
		return float64(d[n/2])
	}
	return float64(d[n/2-1]+d[n/2]) / 2
}
