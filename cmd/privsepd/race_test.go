//go:build race

package main

// raceEnabled: the tests build the command with -race too.
const raceEnabled = true
