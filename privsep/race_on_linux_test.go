//go:build race

package privsep_test

import "time"

// raceExitSleep is how long a race-enabled worker of a root parent sleeps
// at exit: exec'd not dumpable, it cannot open its own /proc/self/environ,
// where the race detector reads GORACE, so raceEnv's atexit_sleep_ms=0
// does not reach it and the detector's default of a second applies.
const raceExitSleep = time.Second
