package fs

import (
	"strings"
	"testing"
)

// The names a peer may ask a listening pipe for: what mkdir takes, of
// printable characters; anything else gets SERVER.N.
func TestPeerPipeName(t *testing.T) {
	tests := []struct {
		asked string
		ok    bool
	}{
		{"jobs", true},
		{"fine name-1", true},
		{"ünïcödé", true},
		{strings.Repeat("n", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"ctl", false},
		{".go-fuse-epoll-hack", false},
		{"a/b", false},
		{strings.Repeat("n", 256), false},
		{"nul\x00", false},
		{"two\nlines", false},
		{"tab\t", false},
		{"esc\x1b[2J", false},
		{"del\x7f", false},
		{"c1\u0085", false},
		{"\u202eevil", false},
		{"bad\xff", false},
	}
	for _, tt := range tests {
		got := peerPipeName(tt.asked)
		if want := map[bool]string{true: tt.asked, false: ""}[tt.ok]; got != want {
			t.Errorf("peerPipeName(%q) = %q, want %q", tt.asked, got, want)
		}
	}
}
