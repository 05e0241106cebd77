package main

import (
	"fmt"
	"os"
	"strings"
	"syscall"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/cmd/internal/ids"
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

// warnControlUnits logs, at start, what keeps -control-unit from admitting
// callers: a kernel on which nothing can be attested (Linux before 6.5, no
// SO_PEERPIDFD), found by attesting ourselves over a socket pair, and no
// root, without which only our own user's processes can be read.
func (d *daemon) warnControlUnits() {
	if len(d.cfg.units) == 0 {
		return
	}
	local, remote, err := peercred.Socketpair(syscall.SOCK_STREAM)
	if err == nil {
		_, err = local.Cred().Attest(nil)
		local.Close()
		remote.Close()
	}
	if err != nil {
		d.log.Warn("-control-unit admits nobody here: the kernel's facts about a caller cannot be read ("+err.Error()+")",
			"allow_units", d.cfg.units.String())
		return
	}
	if euid := os.Geteuid(); euid != 0 {
		d.log.Warn("not running as root: -control-unit can read, and so admit, only the processes of uid "+ids.WithName(uint32(euid)),
			"allow_units", d.cfg.units.String())
	}
}
