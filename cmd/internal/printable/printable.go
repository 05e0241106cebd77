// Package printable makes text that a peer controls, such as the path of
// its executable, safe to print on a terminal: every byte that is not part
// of a printable UTF-8 character is escaped. A terminal acts on C0 controls
// (ESC, BEL, newline), on DEL, and on C1 controls whether they come as a
// raw byte (0x9b is the 8-bit CSI) or as a UTF-8 character (U+009B).
// Decoding a string as UTF-8 is not enough to find them: an invalid byte
// such as 0x9b decodes to U+FFFD, which counts as printable.
package printable

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Is reports whether s is valid UTF-8 made of printable characters only, as
// [unicode.IsPrint] defines them: letters, marks, numbers, punctuation,
// symbols and the ASCII space. Other spaces, controls, format characters
// (such as the bidirectional overrides) and invalid bytes are not.
func Is(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// Word returns s unchanged when it is printable (see [Is]) and has no space
// and no double quote, so that it reads as one word of a line; otherwise it
// returns s Go-quoted, as [strconv.Quote] does: an invalid byte as \x9b, a
// character that is not printable as \u009b, \t, \x1b and the like.
// strconv.Unquote gives s back.
func Word(s string) string {
	if !Is(s) || strings.ContainsAny(s, ` "`) {
		return strconv.Quote(s)
	}
	return s
}

// JSON escapes, in the JSON text b, every character that is not printable
// (see [Is]) but newline as \uXXXX (two of them for a character beyond
// U+FFFF), and returns the result, which means the same. It is for the
// output of encoding/json, which is valid UTF-8 and escapes the C0 controls
// in strings, but leaves DEL, the C1 controls and format characters as they
// are. An invalid byte, which encoding/json never writes, becomes \ufffd.
func JSON(b []byte) []byte {
	var out []byte
	start := 0 // of what is not yet copied to out
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == '\n' || r != utf8.RuneError && unicode.IsPrint(r) {
			i += size
			continue
		}
		if out == nil {
			out = make([]byte, 0, len(b)+16)
		}
		out = append(out, b[start:i]...)
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = appendU(appendU(out, r1), r2) // beyond U+FFFF: a surrogate pair
		} else {
			out = appendU(out, r)
		}
		i += size
		start = i
	}
	if out == nil {
		return b
	}
	return append(out, b[start:]...)
}

// appendU appends the JSON escape \uXXXX of the UTF-16 unit r.
func appendU(b []byte, r rune) []byte {
	const hex = "0123456789abcdef"
	return append(b, '\\', 'u', hex[r>>12&0xf], hex[r>>8&0xf], hex[r>>4&0xf], hex[r&0xf])
}
