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
