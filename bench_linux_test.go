package peercred_test

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/peercred/peercred"
)

// BenchmarkAccept measures one connection: dial, accept, credentials, close.
// "raw" is the same with a plain net.UnixListener and no credentials; the
// ratio of the two is the cost of peercred.
func BenchmarkAccept(b *testing.B) {
	b.Run("peercred", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "s")
		l, err := (&peercred.ListenConfig{}).Listen(b.Context(), path)
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
	})
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
