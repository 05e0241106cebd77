//go:build linux

package privsep

import "strconv"

// raceFlags returns the values that GORACE (the race detector's options,
// as the GORACE environment variable spells them) gives atexit_sleep_ms and
// exitcode, or their defaults (1000 and 66). Options are name=value,
// separated by spaces, commas, colons, tabs or newlines; a value may be
// quoted; the last setting wins; a value that is not a number is ignored.
//
// A race-enabled worker needs them because, exec'd not dumpable (a root
// parent's worker), it cannot open its own /proc/self/environ, where the
// detector reads GORACE: see workerExit.
func raceFlags(gorace string) (sleepMS, exitCode int) {
	sleepMS, exitCode = 1000, 66
	sep := func(c byte) bool {
		return c == ' ' || c == ',' || c == ':' || c == '\t' || c == '\n' || c == '\r'
	}
	for i := 0; i < len(gorace); {
		for i < len(gorace) && sep(gorace[i]) {
			i++
		}
		start := i
		for i < len(gorace) && gorace[i] != '=' && !sep(gorace[i]) {
			i++
		}
		name := gorace[start:i]
		if i >= len(gorace) || gorace[i] != '=' {
			continue
		}
		i++ // '='
		var value string
		if i < len(gorace) && (gorace[i] == '"' || gorace[i] == '\'') {
			q := gorace[i]
			i++
			start = i
			for i < len(gorace) && gorace[i] != q {
				i++
			}
			value = gorace[start:i]
			if i < len(gorace) {
				i++ // the closing quote
			}
		} else {
			start = i
			for i < len(gorace) && !sep(gorace[i]) {
				i++
			}
			value = gorace[start:i]
		}
		n, err := strconv.Atoi(value)
		if err != nil {
			continue
		}
		switch name {
		case "atexit_sleep_ms":
			sleepMS = n
		case "exitcode":
			exitCode = n
		}
	}
	return sleepMS, exitCode
}
