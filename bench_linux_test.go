package peercred_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/internal/benchpair"
)

// BenchmarkAccept measures one connection: dial, accept, credentials, close.
// "raw" is the same with a plain net.UnixListener and no credentials; the
// ratio of the two is the cost of peercred. "pair" runs both in one loop,
// alternately (see internal/benchpair): its ratio, of the median
// connections, is the one to read beside busy processes, where the two run
// one after the other meet a different machine.
func BenchmarkAccept(b *testing.B) {
	b.Run("peercred", func(b *testing.B) { benchAccept(b, &peercred.ListenConfig{}) })
	b.Run("raw", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "s")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		addr := &net.UnixAddr{Name: path, Net: "unix"}
		b.ReportAllocs()
		for b.Loop() {
			acceptRaw(b, l, addr)
		}
	})
	b.Run("pair", func(b *testing.B) {
		dir := b.TempDir()
		paddr := &net.UnixAddr{Name: filepath.Join(dir, "peercred"), Net: "unix"}
		raddr := &net.UnixAddr{Name: filepath.Join(dir, "raw"), Net: "unix"}
		pl, err := (&peercred.ListenConfig{}).Listen(b.Context(), paddr.Name)
		if err != nil {
			b.Fatal(err)
		}
		defer pl.Close()
		rl, err := net.ListenUnix("unix", raddr)
		if err != nil {
			b.Fatal(err)
		}
		defer rl.Close()
		b.ResetTimer()
		r, err := benchpair.Run(b.N,
			benchpair.Timed(func() error { acceptPeercred(b, pl, paddr); return nil }),
			benchpair.Timed(func() error { acceptRaw(b, rl, raddr); return nil }))
		if err != nil {
			b.Fatal(err)
		}
		r.Report(b, "peercred", "raw")
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
	addr := &net.UnixAddr{Name: path, Net: "unix"}
	b.ReportAllocs()
	for b.Loop() {
		acceptPeercred(b, l, addr)
	}
}

// acceptPeercred dials addr, accepts the conn through l, checks that it has
// credentials, and closes both ends.
func acceptPeercred(b *testing.B, l *peercred.Listener, addr *net.UnixAddr) {
	c, err := net.DialUnix("unix", nil, addr)
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

// acceptRaw is acceptPeercred through a plain net.UnixListener.
func acceptRaw(b *testing.B, l *net.UnixListener, addr *net.UnixAddr) {
	c, err := net.DialUnix("unix", nil, addr)
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
