//go:build race

package testutil

// raceEnabled: Build builds commands with -race too.
const raceEnabled = true
