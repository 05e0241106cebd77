package privsep_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/peercred/peercred/privsep"
)

func init() {
	// pathrule-create creates (os.Create's way) each file of its args and
	// writes "new" in it: "PATH: ok" or the error.
	privsep.Register("pathrule-create", func(ctx context.Context, w *privsep.Worker) error {
		for _, p := range w.Args() {
			f, err := w.Create(p)
			if err == nil {
				_, err = io.WriteString(f, "new")
				f.Close()
			}
			fmt.Printf("%s: %s\n", p, errText(err))
		}
		return nil
	})
}

// TestAttackRulePathNotAbsolute: a rule whose Path is not absolute and
// clean (an empty one, from a configuration value left unset) allows
// nothing: the supervisor refuses to start a worker under such a policy,
// rather than match it against every path a worker asks for. (An empty
// Beneath rule matched them all, and the parent opened them from "/": a
// worker of uid 1234 read and truncated a root-only file.)
func TestAttackRulePathNotAbsolute(t *testing.T) {
	dir := t.TempDir() // 0700
	secret := filepath.Join(dir, "secret")
	writeFile(t, secret, "secret", 0o600)
	for _, path := range []string{"", ".", "relative/dir", "/tmp/../etc", "/tmp/"} {
		t.Run(fmt.Sprintf("%q", path), func(t *testing.T) {
			s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
				"broker": {Files: []privsep.PathRule{{Path: filepath.Join(dir, "other")}, {Path: path, Beneath: true, Write: true}}},
			}})
			spec := confinedSpec("broker", nil, "read:"+secret, "write:"+secret+":PWNED")
			out := &syncBuffer{}
			spec.Stdout, spec.Stderr = out, out
			spec.Env = append(spec.Env, raceEnv...)
			p, err := s.Spawn(context.Background(), spec)
			if err == nil {
				waitDone(t, p)
				t.Fatalf("a worker started under a rule for %q; it did:\n%s", path, out)
			}
			if !strings.Contains(err.Error(), "Files[1]") || !strings.Contains(err.Error(), "absolute and clean") {
				t.Errorf("Spawn: %v, want it to name the rule (Files[1]) and what is wrong with it", err)
			}
			if b, _ := os.ReadFile(secret); string(b) != "secret" {
				t.Errorf("the secret now reads %q", b)
			}
		})
	}
}

// TestCreateExisting: Worker.Create truncates a file that exists, as
// os.Create does (the parent passed the create mode on after dropping
// O_CREAT, and openat2 refused that: EINVAL).
func TestCreateExisting(t *testing.T) {
	dir := t.TempDir()
	old := filepath.Join(dir, "old")
	writeFile(t, old, "old content", 0o666)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"pathrule-create": {Files: []privsep.PathRule{{Path: dir, Beneath: true, Create: true}}},
	}})
	fresh := filepath.Join(dir, "fresh")
	p, out := spawn(t, s, privsep.Spec{Role: "pathrule-create", UID: wUID, GID: wGID, Args: []string{old, fresh}})
	waitDone(t, p)
	want := old + ": ok\n" + fresh + ": ok\n"
	if out.String() != want {
		t.Errorf("worker says %q, want %q", out, want)
	}
	for _, f := range []string{old, fresh} {
		if b, err := os.ReadFile(f); err != nil || string(b) != "new" {
			t.Errorf("%s: %q, %v; want \"new\"", f, b, err)
		}
	}
}
