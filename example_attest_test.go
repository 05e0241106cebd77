package peercred_test

import (
	"context"
	"log"
	"log/slog"

	"github.com/peercred/peercred"
)

// A socket that only the backup service may use: its process must be in
// the systemd unit backup.service (systemd put it there; a user cannot
// move a process into it) and run as root.
func ExampleAllowUnits() {
	lc := peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.AllOf(peercred.AllowUIDs(0), peercred.AllowUnits("backup.service")),
	}
	l, err := lc.Listen(context.Background(), "/run/app/backup.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
}

// Log who a client is beyond its credentials: its executable, its unit
// and cgroup, its container (a guess), with the start time that makes the
// line name one process.
func ExampleCred_Attest() {
	l, err := peercred.Listen(context.Background(), "/run/app/app.sock")
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	c, err := l.AcceptPeerCred()
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	p, err := c.Cred().Attest(nil)
	if err != nil {
		// The peer exited, or this kernel cannot confirm its PID.
		slog.Warn("client not attested", "cred", c.Cred(), "err", err)
		return
	}
	slog.Info("client", "process", p, "uid", c.Cred().UID, "container", p.Container.Runtime)
}
