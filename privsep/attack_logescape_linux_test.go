package privsep_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/peercred/peercred/privsep"
)

func init() {
	// open-both PATH...: ask the parent for each PATH; print "done".
	privsep.Register("open-both", func(ctx context.Context, w *privsep.Worker) error {
		for _, p := range w.Args() {
			if f, err := w.Open(p); err == nil {
				f.Close()
			}
		}
		fmt.Println("done")
		return nil
	})
}

// TestRefusedPathsEscapedInLog: a compromised worker asks for paths full of
// terminal and bidirectional tricks (CSI as a raw byte and as U+009B, the
// right-to-left override U+202E, a zero-width space, ESC, a newline and a
// fake log line). The refusals reach a JSON log, where log/slog leaves C1
// and format characters raw; the reasons quote the paths.
func TestRefusedPathsEscapedInLog(t *testing.T) {
	dir := t.TempDir()
	evil := []string{
		dir + "/evil\u202e\u200bgpj.exe\x9b31m\u009b2J\x1b]0;pwn\x07\nfake level=INFO msg=ok\xff",
		"/etc/\u202eevil",                   // outside every rule
		dir + "/../\u009b2Jnot-clean\u2066", // not clean
	}
	var log syncBuffer
	s := privsep.New(privsep.Config{
		Logger: slog.New(slog.NewJSONHandler(&log, nil)),
		Roles: map[string]privsep.Policy{
			"open-both": {
				Files: []privsep.PathRule{{Path: dir + "/allowed"}},
			},
		},
	})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5e9)
		defer cancel()
		s.Shutdown(ctx)
	})
	spec := privsep.Spec{Role: "open-both", UID: 1234, GID: 1234, Args: evil}
	if os.Geteuid() != 0 { // a parent that is not root spawns workers as itself
		spec.UID, spec.GID = uint32(os.Geteuid()), uint32(os.Getegid())
	}
	p, out := spawn(t, s, spec)
	waitDone(t, p)
	if got := strings.TrimSpace(out.String()); got != "done" {
		t.Fatalf("worker printed %q", got)
	}
	text := log.String()
	for i, r := range []rune(text) {
		if r != '\n' && (r == utf8.RuneError || !unicode.IsPrint(r)) {
			t.Errorf("log holds %U at rune %d", r, i)
		}
	}
	for _, p := range evil {
		// As the JSON string of the reason holds the quoted path.
		q := strconv.Quote(p)
		if inJSON := strconv.Quote(q); strings.Count(text, inJSON[1:len(inJSON)-1]) < 1 {
			t.Errorf("log lacks the quoted path %s:\n%s", q, text)
		}
	}
}
