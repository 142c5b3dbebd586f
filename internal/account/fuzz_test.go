package account

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzObfuscate(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "a@example.com", "ab@example.com", "abc@example.com", "ünïcödé@exämple.com",
		"+14155552671", "+442071838750", "+123456", "+12345", "+1", "+",
		"", "@", "@example.com", "alice", "alice@", "a@b@c.example", "\xff\xfe@example.com", "\xff@\xff\xff\xff\xff",
		"14155552671", "+€12345", "abcdefghij",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		email := ObfuscateEmail(s)
		phone := ObfuscatePhone(s)

		// An input that holds the mask character cannot be told apart from
		// a masked one ("a***e@example.com" shows as itself), so the
		// property is for inputs without '*'.
		if len(s) > 6 && !strings.Contains(s, "*") {
			if strings.Contains(email, s) {
				t.Fatalf("ObfuscateEmail(%q) = %q shows the whole address", s, email)
			}
			if strings.Contains(phone, s) {
				t.Fatalf("ObfuscatePhone(%q) = %q shows the whole number", s, phone)
			}
		}

		// The email's local part shows at most its first and last
		// character; the domain is kept.
		if local, domain, ok := strings.Cut(s, "@"); ok && local != "" {
			masked, gotDomain, _ := strings.Cut(email, "@")
			if gotDomain != domain {
				t.Fatalf("ObfuscateEmail(%q) = %q changed the domain", s, email)
			}
			if shown := utf8.RuneCountInString(strings.ReplaceAll(masked, "*", "")); shown > 2 {
				t.Fatalf("ObfuscateEmail(%q) = %q shows %d characters of the local part", s, email, shown)
			}
			if n := utf8.RuneCountInString(local); n >= 3 && !strings.Contains(local, "*") && strings.Contains(masked, local) {
				t.Fatalf("ObfuscateEmail(%q) = %q shows the local part", s, email)
			}
		} else if email != "***" {
			t.Fatalf("ObfuscateEmail(%q) = %q, want *** for a non-address", s, email)
		}

		// The phone keeps "+", two digits at each end, and masks the rest.
		switch {
		case s == "":
			if phone != "" {
				t.Fatalf("ObfuscatePhone(\"\") = %q", phone)
			}
		case len(s) < 6 || s[0] != '+':
			if phone != "***" {
				t.Fatalf("ObfuscatePhone(%q) = %q, want ***", s, phone)
			}
		default:
			if len(phone) != len(s) || phone[:3] != s[:3] || phone[len(phone)-2:] != s[len(s)-2:] ||
				strings.Trim(phone[3:len(phone)-2], "*") != "" {
				t.Fatalf("ObfuscatePhone(%q) = %q", s, phone)
			}
		}
	})
}
