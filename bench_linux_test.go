package peercred_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/peercred/peercred"
)

// BenchmarkAccept measures one connection: dial, accept, credentials, close.
// "raw" is the same with a plain net.UnixListener and no credentials; the
// ratio of the two is the cost of peercred.
func BenchmarkAccept(b *testing.B) {
	b.Run("peercred", func(b *testing.B) { benchAccept(b, &peercred.ListenConfig{}) })
	b.Run("raw", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "s")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		b.ReportAllocs()
		for b.Loop() {
			c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
			if err != nil {
				b.Fatal(err)
			}
			a, err := l.AcceptUnix()
			if err != nil {
				b.Fatal(err)
			}
			a.Close()
			c.Close()
		}
	})
}

// BenchmarkAcceptAttest is BenchmarkAccept/peercred through a Listener
// whose Authorizer attests every peer (AllowCgroups("/"), which admits any
// process: the cost is the attestation, which AllowUnits and the other
// attesting Authorizers make alike). The peer is this process, as in
// BenchmarkAccept; read it beside the same run's BenchmarkAccept.
func BenchmarkAcceptAttest(b *testing.B) {
	benchAccept(b, &peercred.ListenConfig{Authorize: peercred.AllowCgroups("/")})
}

// benchAccept times dial, accept through a Listener of lc, close.
func benchAccept(b *testing.B, lc *peercred.ListenConfig) {
	path := filepath.Join(b.TempDir(), "s")
	l, err := lc.Listen(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	b.ReportAllocs()
	for b.Loop() {
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			b.Fatal(err)
		}
		a, err := l.AcceptPeerCred()
		if err != nil {
			b.Fatal(err)
		}
		if a.Cred().PID == 0 {
			b.Fatal("no pid")
		}
		a.Close()
		c.Close()
	}
}

// BenchmarkAttest measures Cred.Attest on one accepted connection's Cred,
// whose peer is this process: "cred" with no options, as the attesting
// Authorizers call it; "hash" with HashExecutable, which reads the whole
// executable (this test binary; its size is reported as exe-MB) and
// costs in proportion to it.
func BenchmarkAttest(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s")
	l, err := (&peercred.ListenConfig{}).Listen(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	a, err := l.AcceptPeerCred()
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	cred := a.Cred()
	b.Run("cred", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := cred.Attest(nil)
			if err != nil {
				b.Fatal(err)
			}
			if p.Exe.Ino == 0 {
				b.Fatal("no executable")
			}
		}
	})
	b.Run("hash", func(b *testing.B) {
		exe, err := os.Stat("/proc/self/exe")
		if err != nil {
			b.Fatal(err)
		}
		opts := &peercred.AttestOptions{HashExecutable: true}
		b.ReportAllocs()
		for b.Loop() {
			p, err := cred.Attest(opts)
			if err != nil {
				b.Fatal(err)
			}
			if len(p.Exe.SHA256) == 0 {
				b.Fatal("no hash")
			}
		}
		b.ReportMetric(float64(exe.Size())/(1<<20), "exe-MB")
	})
}
