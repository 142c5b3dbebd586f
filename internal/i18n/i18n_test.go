package i18n

import (
	"context"
	"regexp"
	"sort"
	"strings"
	"testing"
)

var placeholder = regexp.MustCompile(`\{[a-zA-Z_]+\}`)

// Every catalogue holds exactly the keys of the English one, with the same
// placeholders: a translation can neither miss a message nor drop the code
// it was meant to carry.
func TestCataloguesAgree(t *testing.T) {
	en := catalogues[Default]
	for lang, msgs := range catalogues {
		for key, text := range en {
			other, ok := msgs[key]
			if !ok {
				t.Errorf("%s: missing %q", lang, key)
				continue
			}
			if a, b := holes(text), holes(other); a != b {
				t.Errorf("%s: %q has placeholders %s, English has %s", lang, key, b, a)
			}
		}
		for key := range msgs {
			if _, ok := en[key]; !ok {
				t.Errorf("%s: %q is not in the English catalogue", lang, key)
			}
		}
	}
}

func holes(s string) string {
	h := placeholder.FindAllString(s, -1)
	sort.Strings(h)
	return strings.Join(h, "")
}

func TestNegotiate(t *testing.T) {
	cases := []struct{ setting, accept, want string }{
		{"", "", "en"},
		{"", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "fr-FR,de;q=0.5", "de"},
		{"", "fr-FR", "en"},
		{"en", "de", "en"},
		{"de", "", "de"},
		{"xx", "de-AT", "de"},
		{"", "this is not a header;;;", "en"},
	}
	for _, c := range cases {
		if got := Negotiate(c.setting, c.accept); got != c.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", c.setting, c.accept, got, c.want)
		}
	}
}

func TestTFillsAndFallsBack(t *testing.T) {
	catalogues["en"]["test.greeting"] = "Hello {name}, {name}"
	defer delete(catalogues["en"], "test.greeting")
	if got := T("de", "test.greeting", "name", "Ada"); got != "Hello Ada, Ada" {
		t.Errorf("fallback to English: %q", got)
	}
	if got := T("de", "language.name"); got != "Deutsch" {
		t.Errorf("German: %q", got)
	}
	if got := For(WithLanguage(context.Background(), "de"), ""); got != "de" {
		t.Errorf("For with request language: %q", got)
	}
	if got := For(WithLanguage(context.Background(), "de"), "en"); got != "en" {
		t.Errorf("the user's setting wins: %q", got)
	}
}
