//go:build linux && !race

package privsep

import "os"

// workerExit ends the worker with code (see worker_exit_race.go for what a
// race-enabled worker does instead).
func workerExit(code int) { os.Exit(code) }
