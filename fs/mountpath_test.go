package fs

import "testing"

func TestUnescapeMountPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/tmp/pipes", "/tmp/pipes"},
		{"", ""},
		{`/tmp/with\040space`, "/tmp/with space"},
		{`/a\011tab\012nl`, "/a\ttab\nnl"},
		{`/back\134slash`, `/back\slash`},
		{`\040\040`, "  "},
		{`/end\040`, "/end "},
		{`/high\377`, "/high\xff"},
		// Not an escape: left as is.
		{`/short\04`, `/short\04`},
		{`/short\0`, `/short\0`},
		{`/trailing\`, `/trailing\`},
		{`/notoctal\089`, `/notoctal\089`},
		{`/letters\abc`, `/letters\abc`},
		{`/toobig\400`, `/toobig\400`}, // over a byte
		{`/sign\+12`, `/sign\+12`},
	}
	for _, tc := range tests {
		if got := unescapeMountPath(tc.in); got != tc.want {
			t.Errorf("unescapeMountPath(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}
