//go:build !race

package privsep_test

import "time"

// raceExitSleep: see race_on_linux_test.go.
const raceExitSleep time.Duration = 0
