package netlink

import "testing"

func TestCleanText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"refused by peer: wrong secret", "refused by peer: wrong secret"},
		{"x\noutbox 0\nlink none", `x\x0aoutbox 0\x0alink none`},
		{"tab\there, cr\r, nul\x00, del\x7f, esc\x1b[2J", `tab\x09here, cr\x0d, nul\x00, del\x7f, esc\x1b[2J`},
		{"bad \xff\xfe utf-8, cut \xe2\x82", `bad \xff\xfe utf-8, cut \xe2\x82`},
		{"ünïcödé €, and U+FFFD itself: \uFFFD", "ünïcödé €, and U+FFFD itself: \uFFFD"},
		{`already \x0a clean`, `already \x0a clean`},
	}
	for _, tt := range tests {
		got := CleanText(tt.in)
		if got != tt.want {
			t.Errorf("CleanText(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if again := CleanText(got); again != got {
			t.Errorf("CleanText is not idempotent on %q: %q", got, again)
		}
	}
}

func TestTruncateText(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly", 7, "exactly"},
		{"abcdef", 3, "abc"},
		{"ab€", 4, "ab"}, // € is 3 bytes: not cut inside
		{"ab€", 3, "ab"},
		{"ab€", 5, "ab€"},
		{"ab€x", 5, "ab€"},
		{"😀😀", 5, "😀"},
		{"\x80\x80\x80\x80\x80\x80", 4, "\x80\x80\x80\x80"}, // not UTF-8: cut where asked
	}
	for _, tt := range tests {
		if got := truncateText(tt.in, tt.n); got != tt.want {
			t.Errorf("truncateText(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
