//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "privsepd needs Linux: its workers are verified with SCM_CREDENTIALS, pidfds and /proc")
	os.Exit(1)
}
