package printable

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestWord(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"/usr/bin/nc", "/usr/bin/nc"},
		{"/opt/café/日本", "/opt/café/日本"},
		{"", ""},
		{"a b", `"a b"`},
		{`a"b`, `"a\"b"`},
		{"a\nb", `"a\nb"`},
		{"\x1b[2J", `"\x1b[2J"`},
		{"a\x7fb", `"a\x7fb"`},             // DEL
		{"nc\x9b31m", `"nc\x9b31m"`},       // the 8-bit CSI: invalid UTF-8 alone
		{"nc\u009b31m", `"nc\u009b31m"`},   // CSI as a UTF-8 character
		{"\xc2", `"\xc2"`},                 // a truncated sequence
		{"\x80\x9f", `"\x80\x9f"`},         // C1 bytes
		{"\xed\xa0\x80", `"\xed\xa0\x80"`}, // a surrogate in UTF-8
		{"\xff\xfe", `"\xff\xfe"`},         // never valid
		{"a\u202eb", `"a\u202eb"`},         // right-to-left override
		{"a\u00a0b", `"a\u00a0b"`},         // a space other than ASCII's
		{"\ufffd", "\ufffd"},               // the replacement character itself is printable
		{"\U0001F600", "\U0001F600"},       // printable beyond the BMP
		{"a\U000E0001", `"a\U000e0001"`},   // a tag character
		{"a\tb\rc\x00", `"a\tb\rc\x00"`},   // other C0 controls
		{"x\x9b\u009b\x7f\xff", `"x\x9b\u009b\x7f\xff"`},
	}
	for _, tt := range tests {
		if got := Word(tt.in); got != tt.want {
			t.Errorf("Word(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestJSON(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{`{"exe":"/usr/bin/nc"}` + "\n", `{"exe":"/usr/bin/nc"}` + "\n"},
		{`"café"`, `"café"`},
		{"\"a\u009bb\"", `"a\u009bb"`},
		{"\"a\x7fb\"", `"a\u007fb"`},
		{"\"a\u202eb\"", `"a\u202eb"`},
		{"\"a\U000E0001b\"", `"a\udb40\udc01b"`},
		{"\"a\x9bb\"", `"a\ufffdb"`},
		{"\"a\x1bb\r\"", `"a\u001bb\u000d"`},
	}
	for _, tt := range tests {
		if got := string(JSON([]byte(tt.in))); got != tt.want {
			t.Errorf("JSON(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// printableText reports whether s is valid UTF-8 of printable characters
// and newlines.
func printableText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r != '\n' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

func FuzzWord(f *testing.F) {
	for _, s := range []string{"/usr/bin/nc", "a b", "nc\x9b31m", "nc\u009b", "\xff", "a\u202e", "\ufffd"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w := Word(s)
		if !printableText(w) || strings.Contains(w, "\n") {
			t.Fatalf("Word(%q) = %q: not one line of printable UTF-8", s, w)
		}
		if w == s {
			if !Is(s) || strings.ContainsAny(s, ` "`) {
				t.Fatalf("Word(%q) left it as it is", s)
			}
			return
		}
		if u, err := strconv.Unquote(w); err != nil || u != s {
			t.Fatalf("Word(%q) = %s, which unquotes to %q, %v", s, w, u, err)
		}
	})
}

func FuzzJSON(f *testing.F) {
	for _, s := range []string{"/usr/bin/nc", "nc\x9b31m", "nc\u009b", "\x7f", "a\u202e", "\U000E0001", "\ufffd\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := json.Marshal(map[string]string{"exe": s})
		if err != nil {
			t.Fatal(err)
		}
		out := JSON(b)
		if !printableText(string(out)) {
			t.Fatalf("JSON(%q) = %q: not printable UTF-8", b, out)
		}
		var want, got map[string]string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(out, &got); err != nil || got["exe"] != want["exe"] {
			t.Fatalf("JSON(%q) = %q, which decodes to %q, %v; want %q", b, out, got["exe"], err, want["exe"])
		}
	})
}
