package peercred_test

import (
	"context"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"syscall"

	"github.com/peercred/peercred"
)

// Attest a child by the pidfd it was started with: its end of a socket
// pair would report the parent, the pair's creator.
func ExampleAttestPidFD() {
	pidfd := -1
	cmd := exec.Command("/usr/libexec/app/worker")
	cmd.SysProcAttr = &syscall.SysProcAttr{PidFD: &pidfd}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	if pidfd < 0 {
		log.Fatal("the kernel gave no pidfd (Linux before 5.3?)")
	}
	f := os.NewFile(uintptr(pidfd), "pidfd")
	defer f.Close()
	p, err := peercred.AttestPidFD(f, nil)
	if err != nil {
		slog.Warn("worker not attested", "pid", cmd.Process.Pid, "err", err)
		return
	}
	slog.Info("worker", "process", p)
}

// Decide by several facts of one reading of the peer's process, and log
// that reading: the Authorizers decide by what WithAttestation read.
func ExampleCred_WithAttestation() {
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
	cred := c.Cred().WithAttestation(nil)
	auth := peercred.AllOf(peercred.AllowUnits("backup.service"), peercred.SameNamespaces())
	if err := auth(cred); err != nil {
		slog.Warn("client refused", "cred", cred, "err", err)
		return
	}
	p, err := cred.Attest(nil) // the same reading, not read again
	if err == nil {
		slog.Info("client", "process", p)
	}
}
