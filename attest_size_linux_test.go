package peercred_test

import (
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// TestAttestRefusesHugeExecutable: any user can run an executable of any
// size (a sparse file: a copy of a program, extended), and a hash of it
// read in an accept loop would hold that loop for as long as the file is
// large. Hashing refuses, before reading, an executable over
// AttestOptions.MaxExecutableSize (DefaultMaxExecutableSize when 0), and
// AllowExecutableSHA256 refuses its peer; below the limit it is hashed.
func TestAttestRefusesHugeExecutable(t *testing.T) {
	exe, env := testutil.HelperExec(t, "connect")
	big := filepath.Join(t.TempDir(), "big")
	if err := copyFile(exe, big); err != nil {
		t.Fatal(err)
	}
	const size = peercred.DefaultMaxExecutableSize + 1<<20
	if err := os.Truncate(big, size); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	l := listen(t, &peercred.ListenConfig{})
	cmd := exec.Command(big, l.Addr().String())
	cmd.Env = append(os.Environ(), env...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := acceptTimeout(t, l)
	cred := c.Cred()

	p, err := cred.Attest(&peercred.AttestOptions{HashExecutable: true})
	if err == nil {
		t.Fatalf("Attest hashed an executable of %d bytes: %x", int64(size), p.Exe.SHA256)
	}
	if !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Attest: %v, want an error that says the executable is too large", err)
	}
	t.Logf("Attest: %v", err)

	// The peer could be admitted by its hash, were it read: it is refused.
	sum := sha256File(t, big)
	if err := peercred.AllowExecutableSHA256(hex.EncodeToString(sum))(cred); !errors.Is(err, peercred.ErrUnauthorized) {
		t.Errorf("AllowExecutableSHA256(its hash): %v, want a refusal", err)
	}

	// With a larger limit it is read, and matches.
	p, err = cred.Attest(&peercred.AttestOptions{HashExecutable: true, MaxExecutableSize: size})
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Exe.SHA256) != string(sum) {
		t.Errorf("SHA-256 %x, want %x", p.Exe.SHA256, sum)
	}
}
