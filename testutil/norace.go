//go:build unix && !race

package testutil

// raceEnabled: Build builds commands with -race too.
const raceEnabled = false
