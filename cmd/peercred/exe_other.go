//go:build !linux

package main

import "github.com/peercred/peercred"

// peerExe returns "": only Linux has /proc/PID/exe.
func peerExe(c *peercred.Conn) string { return "" }
