package peercred_test

import (
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/peercred/peercred"
	"github.com/peercred/peercred/testutil"
)

// TestRefusalReasonEscapesExePath: a local user runs its program from a
// path full of terminal and bidirectional tricks (CSI as a raw byte and as
// U+009B, the right-to-left override U+202E, a zero-width space, ESC, BEL,
// a newline with a fake log line after it). AllowExecutables refuses it,
// and the Listener's JSON log line, which log/slog's JSON handler would
// leave the C1 and format characters in, holds none of them: the path is
// quoted in the reason.
func TestRefusalReasonEscapesExePath(t *testing.T) {
	testutil.RequireRoot(t)
	allowed, roleEnv := testutil.HelperExec(t, "connect")
	evil := filepath.Join(publicDir(t),
		"evil\u202e\u200bgpj.exe\x9b31m\u009b2J\x1b]0;pwn\x07\nfake pid=1 uid=0(root)\xff")
	var log syncBuffer
	l := listen(t, &peercred.ListenConfig{
		Mode:      0666,
		Authorize: peercred.AllowExecutables(allowed),
		Logger:    slog.New(slog.NewJSONHandler(&log, nil)),
	})
	p := testutil.Start(t, "exec-as", testutil.Options{As: other,
		Args: append([]string{"copy", evil, l.Addr().String()}, roleEnv...)})
	if line := p.Line(t); line != "connected" {
		t.Fatalf("peer said %q", line)
	}
	waitLog(t, l, &log, `"peercred: peer refused"`)

	text := log.String()
	for i, r := range []rune(text) {
		if r != '\n' && (r == utf8.RuneError || !unicode.IsPrint(r)) {
			t.Errorf("log holds %U at rune %d:\n%q", r, i, text)
		}
	}
	line, _, _ := strings.Cut(text, "\n")
	var rec struct{ Reason string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		t.Fatalf("log line %q: %v", line, err)
	}
	if want := strconv.Quote(evil); !strings.Contains(rec.Reason, want) {
		t.Errorf("reason %q lacks the quoted path %s", rec.Reason, want)
	}
}
