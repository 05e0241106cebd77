//go:build linux && race

package privsep

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
)

// workerExit ends a race-enabled worker with code. The race detector sleeps
// a second before a successful exit (GORACE's atexit_sleep_ms) and reads
// GORACE from /proc/self/environ, which a worker exec'd not dumpable (a
// root parent's) cannot open: so GORACE=atexit_sleep_ms=0 would not reach
// it, and every stop of such a worker in a -race test would take a second.
// When the worker's own environment asks for no sleep, workerExit ends the
// worker the way the detector would, without it: status 0, or, if the
// detector reported a race, its exit code (GORACE's exitcode, default 66)
// after the line the detector prints. Otherwise, or with a coverage
// directory to write (GOCOVERDIR: os.Exit runs the hook that writes it),
// os.Exit does it all.
func workerExit(code int) {
	if code != 0 || os.Getenv("GOCOVERDIR") != "" {
		os.Exit(code)
	}
	sleepMS, exitCode := raceFlags(os.Getenv("GORACE"))
	if sleepMS != 0 {
		os.Exit(0)
	}
	if n := runtime.RaceErrors(); n > 0 {
		fmt.Fprintf(os.Stderr, "Found %d data race(s)\n", n)
		syscall.Exit(exitCode)
	}
	syscall.Exit(0)
}
