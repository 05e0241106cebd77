package privsep_test

import (
	"path/filepath"
	"testing"

	"github.com/peercred/peercred/privsep"
)

// TestPathRuleLinks: the directory a rule is resolved from may be reached
// through symbolic links (the policy is trusted): the parent's first,
// whole-path resolution meets the link and resolves again beneath the
// rule's directory. Beneath it no link is followed, not even one that
// stays inside, nor the file an exact rule names.
func TestPathRuleLinks(t *testing.T) {
	base := t.TempDir()
	real := filepath.Join(base, "real")
	link := filepath.Join(base, "link")
	writeFile(t, filepath.Join(real, "f"), "content", 0o644)
	symlink(t, "real", link)
	symlink(t, "f", filepath.Join(real, "inside"))
	writeFile(t, filepath.Join(base, "one"), "one", 0o644)
	symlink(t, "one", filepath.Join(base, "onelink"))
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker": {Files: []privsep.PathRule{
			{Path: link, Beneath: true},
			{Path: filepath.Join(base, "onelink")},
			{Path: filepath.Join(base, "one")},
		}},
	}})
	checkBroker(t, s, []string{
		"read:" + link + "/f: ok content",
		"read:" + link + "/inside: denied",
		"read:" + real + "/f: denied",
		"read:" + base + "/onelink: denied",
		"read:" + base + "/one: ok one",
	})
}

// TestPathRuleOnce: a rule allowed once is used up by any operation under
// it, an Access as much as an open; another rule still allows what it
// allows.
func TestPathRuleOnce(t *testing.T) {
	base := t.TempDir()
	writeFile(t, filepath.Join(base, "once"), "once", 0o644)
	writeFile(t, filepath.Join(base, "more"), "more", 0o644)
	s, _ := newSupervisor(t, privsep.Config{Roles: map[string]privsep.Policy{
		"broker": {Files: []privsep.PathRule{
			{Path: filepath.Join(base, "once"), Once: true},
			{Path: filepath.Join(base, "more")},
		}},
	}})
	checkBroker(t, s, []string{
		"access:" + base + "/once:4: ok",
		"read:" + base + "/once: denied",
		"read:" + base + "/more: ok more",
		"read:" + base + "/more: ok more",
	})
}
