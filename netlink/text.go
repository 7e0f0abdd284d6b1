package netlink

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// CleanText makes text that came from a peer — the words of its ERROR or
// BYE, a reason built from them — safe to show as part of one line of a
// status file: each control character (a byte below 0x20, or 0x7f) and
// each byte that is not part of valid UTF-8 becomes the four characters
// \xNN (its value in lower-case hex). Without it a peer could end a
// status line and add lines of its own, or send escapes to a terminal.
// Text that is already clean is returned as it is, so cleaning twice
// changes nothing.
func CleanText(s string) string {
	i := dirtyAt(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1 {
			fmt.Fprintf(&b, `\x%02x`, s[i])
			i++
			continue
		}
		b.WriteString(s[i : i+n])
		i += n
	}
	return b.String()
}

// dirtyAt is the index of the first byte CleanText would change, or -1.
func dirtyAt(s string) int {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r < 0x20 || r == 0x7f || r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// truncateText cuts s to at most n bytes, before a UTF-8 character that
// would not fit whole rather than inside it. Bytes that are not valid
// UTF-8 anyway may be cut anywhere.
func truncateText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for i := n; i > 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i]
		}
	}
	return s[:n]
}
