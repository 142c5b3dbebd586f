package account

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// clip never cuts a character in two.
func TestClipKeepsCharacters(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 512, "short"},
		{"x" + strings.Repeat("é", 400), 512, "x" + strings.Repeat("é", 255)},
		{strings.Repeat("€", 200), 512, strings.Repeat("€", 170)},
		{strings.Repeat("é", 400), 512, strings.Repeat("é", 256)},
		{"€", 2, ""},
	} {
		got := clip(c.in, c.n)
		if got != c.want || len(got) > c.n || !utf8.ValidString(got) {
			t.Errorf("clip(%.20q…, %d) = %.20q… (%d bytes), want %.20q… (%d bytes)", c.in, c.n, got, len(got), c.want, len(c.want))
		}
	}
}
