package main

import (
	"fmt"
	"strings"

	"github.com/peercred/peercred"
)

// unitList is a flag.Value that collects systemd unit names (-control-unit).
// It may be given several times, and each value may hold several names
// separated by commas.
type unitList []string

// String returns the names as "a.service,b.service".
func (l *unitList) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(*l, ",")
}

// Set adds the names in s. A name must be one that a process can be in, as
// peercred.SystemdUnit reads a cgroup path: a service, scope, socket, mount
// or swap unit. A slice holds no process of its own (its processes are in
// its units), and peercred.AllowUnits would never match one.
func (l *unitList) Set(s string) error {
	for name := range strings.SplitSeq(s, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			return fmt.Errorf("empty unit name in %q", s)
		}
		if unit, _, _, _ := peercred.SystemdUnit("/" + name); unit != name {
			return fmt.Errorf("%q is not a systemd unit name that a process can be in (NAME.service, .scope, .socket, .mount or .swap; not a slice, not a path)", name)
		}
		*l = append(*l, name)
	}
	return nil
}
