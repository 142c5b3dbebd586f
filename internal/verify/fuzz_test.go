package verify

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fuzzSymbolSet splits a fuzzed string into a symbolSet: entries are
// separated by newlines (which no valid entry contains), and "" is no
// symbolSet at all.
func fuzzSymbolSet(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

func FuzzGenerateCode(f *testing.F) {
	for _, tc := range []struct {
		sets   string
		length int
		random []byte
	}{
		{"", 6, []byte{0, 1, 2, 3, 4, 5}},
		{"DIGITS", 6, nil},
		{"DIGITS\nalphas\nALPHAS\nSYMBOLS", 128, bytes.Repeat([]byte{255}, 64)},
		{"ALPHAS", 4, []byte("zzzz")},
		{"xyz", 10, nil},
		{"DIGITS\nxyz", 8, nil},
		{"ab", 4, []byte{0xff, 0xfe, 0, 1}},
		{"a", 6, nil},
		{"aaaa", 6, nil},
		{"", 0, nil},
		{"\n", 6, nil},
		{"ab c", 6, nil},
		{"é!", 6, nil},
		{"\x00\x01", 6, nil},
		{"digits", 6, nil},
		{"!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", 64, nil},
		{"DIGITS", -1, nil},
		{"DIGITS", 1 << 30, nil},
	} {
		f.Add(tc.sets, tc.length, tc.random)
	}
	f.Fuzz(func(t *testing.T, sets string, length int, random []byte) {
		symbolSet := fuzzSymbolSet(sets)
		alphabet, err := Alphabet(symbolSet)
		if err != nil {
			return
		}
		again, _ := Alphabet(symbolSet)
		if again != alphabet {
			t.Fatalf("Alphabet(%q) is not stable: %q then %q", symbolSet, alphabet, again)
		}
		if len(alphabet) < 2 {
			t.Fatalf("Alphabet(%q) = %q, fewer than two characters", symbolSet, alphabet)
		}
		seen := map[rune]bool{}
		for _, r := range alphabet {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
				t.Fatalf("Alphabet(%q) = %q holds %q, not printable ASCII", symbolSet, alphabet, r)
			}
			if seen[r] {
				t.Fatalf("Alphabet(%q) = %q holds %q twice", symbolSet, alphabet, r)
			}
			seen[r] = true
		}
		// Every character of every entry, and nothing else, is drawn from.
		var all strings.Builder
		for _, e := range symbolSet {
			if chars, ok := symbolSets[e]; ok {
				e = chars
			}
			all.WriteString(e)
		}
		if len(symbolSet) == 0 {
			all.WriteString(symbolSets["DIGITS"])
		}
		for _, r := range all.String() {
			if !seen[r] {
				t.Fatalf("Alphabet(%q) = %q lacks %q", symbolSet, alphabet, r)
			}
		}
		for r := range seen {
			if !strings.ContainsRune(all.String(), r) {
				t.Fatalf("Alphabet(%q) = %q holds %q, from no entry", symbolSet, alphabet, r)
			}
		}

		// Codes of every length the API allows, and some beyond.
		length %= 2*MaxCodeLength + 1
		if length < 0 {
			length = -length
		}
		// The fuzzed bytes come first, then real randomness, so that a
		// run of rejected bytes cannot stall the test.
		code, err := GenerateCode(io.MultiReader(bytes.NewReader(random), rand.Reader), length, alphabet)
		if err != nil {
			t.Fatalf("GenerateCode(%d, %q): %v", length, alphabet, err)
		}
		checkCode(t, code, length, alphabet)

		// Only the fuzzed bytes: a code of the right shape, or an error
		// when they run out, never a short code.
		code, err = GenerateCode(bytes.NewReader(random), length, alphabet)
		if err == nil {
			checkCode(t, code, length, alphabet)
		}
	})
}

func checkCode(t *testing.T, code string, length int, alphabet string) {
	t.Helper()
	if len(code) != length {
		t.Fatalf("GenerateCode(%d, %q) = %q, %d characters", length, alphabet, code, len(code))
	}
	for i := 0; i < len(code); i++ {
		if strings.IndexByte(alphabet, code[i]) < 0 {
			t.Fatalf("GenerateCode(%d, %q) = %q holds %q, not in the alphabet", length, alphabet, code, code[i])
		}
	}
}

func FuzzParseHMS(f *testing.F) {
	for _, s := range []string{
		"01:00:00", "00:00:30", "100:00:00", "9999:59:59", "0000:00:00", "00:00:00",
		"", "1:00:00", "00:60:00", "00:00:60", "-1:00:00", "+1:00:00", "00:+1:00", "0x1:00:00",
		"10000:00:00", "aa:bb:cc", "00:00:00:00", " 01:00:00", "01:00:00 ", "٠١:٠٠:٠٠", "1_0:00:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseHMS(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("ParseHMS(%q) = %v, negative", s, d)
		}
		if d >= 10000*time.Hour {
			t.Fatalf("ParseHMS(%q) = %v, more hours than HHHH allows", s, d)
		}
		if d%time.Second != 0 {
			t.Fatalf("ParseHMS(%q) = %v, not whole seconds", s, d)
		}
		h, m, sec := int64(d/time.Hour), int64(d%time.Hour/time.Minute), int64(d%time.Minute/time.Second)
		formatted := fmt.Sprintf("%02d:%02d:%02d", h, m, sec)
		back, err := ParseHMS(formatted)
		if err != nil {
			t.Fatalf("ParseHMS(%q) = %v, but its own spelling %q does not parse: %v", s, d, formatted, err)
		}
		if back != d {
			t.Fatalf("ParseHMS(%q) = %v, but %q parses as %v", s, d, formatted, back)
		}
	})
}

// checkClean fails when s holds control characters or white space, or is
// not UTF-8.
func checkClean(t *testing.T, what, in, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Fatalf("%s(%q) = %q, not valid UTF-8", what, in, out)
	}
	for _, r := range out {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			t.Fatalf("%s(%q) = %q holds %q", what, in, out, r)
		}
	}
}

func FuzzNormalizeEmail(f *testing.F) {
	for _, s := range []string{
		"alice@example.com", "Alice@Example.COM", "a.b+tag@sub.example.co.uk", "o'brien@example.ie",
		"user@xn--bcher-kva.example", "ünïcödé@exämple.com", "a@b.c",
		"", "alice", "@example.com", "alice@", "alice@example", "alice@.example.com", "alice@example.com.",
		"alice@[127.0.0.1]", "Alice <alice@example.com>", "\"a b\"@example.com", "alice@example.com (c)",
		" alice@example.com", "alice@example.com\n", "a\x00@example.com", "a@b@example.com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com",
		"a@\u212a.example", // KELVIN SIGN lower-cases to a one-byte 'k'
		"a@\u023a.example", // Ⱥ lower-cases to a longer UTF-8 sequence
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizeEmail(s)
		if err != nil {
			return
		}
		checkClean(t, "NormalizeEmail", s, out)
		if len(out) > maxEmailLength {
			t.Fatalf("NormalizeEmail(%q) = %q, %d bytes, over the %d-byte limit", s, out, len(out), maxEmailLength)
		}
		local, domain, _ := strings.Cut(s, "@")
		outLocal, outDomain, ok := strings.Cut(out, "@")
		if !ok || outLocal != local || !strings.EqualFold(outDomain, domain) || strings.Contains(outDomain, "@") {
			t.Fatalf("NormalizeEmail(%q) = %q: not the same address", s, out)
		}
		again, err := NormalizeEmail(out)
		if err != nil {
			t.Fatalf("NormalizeEmail(%q) = %q, which it then rejects: %v", s, out, err)
		}
		if again != out {
			t.Fatalf("NormalizeEmail is not idempotent: %q → %q → %q", s, out, again)
		}
	})
}

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{
		"+14155550123", "+442071838750", "+4915112345678", "+33612345678", "+8613812345678", "+380501234567",
		"+390612345678", "+61412345678", "+79161234567",
		"", "+", "14155550123", "+1 415 555 0123", "+1-415-555-0123", "+00000000000", "+999999999999999",
		"+1415555012", "+141555501234567890", "++14155550123", "+١٤١٥٥٥٥٠١٢٣", "+14155550123\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := NormalizePhone(s)
		if err != nil {
			return
		}
		checkClean(t, "NormalizePhone", s, out)
		if len(out) < 2 || out[0] != '+' {
			t.Fatalf("NormalizePhone(%q) = %q, no leading +", s, out)
		}
		for _, r := range out[1:] {
			if r < '0' || r > '9' {
				t.Fatalf("NormalizePhone(%q) = %q holds %q, not a digit", s, out, r)
			}
		}
		if len(out) > 16 {
			t.Fatalf("NormalizePhone(%q) = %q, longer than E.164's 15 digits", s, out)
		}
		again, err := NormalizePhone(out)
		if err != nil {
			t.Fatalf("NormalizePhone(%q) = %q, which it then rejects: %v", s, out, err)
		}
		if again != out {
			t.Fatalf("NormalizePhone is not idempotent: %q → %q → %q", s, out, again)
		}
	})
}

func FuzzRender(f *testing.F) {
	for _, tc := range [][3]string{
		{"Your code is {{{CODE}}}", "123456", "0b8c8a4e-4f0e-4f8e-9a4b-2a2d1f3c9e71"},
		{"{{{CODE}}} for {{{VERIFICATION_ID}}}", "abc", "id-1"},
		{"{{{CODE}}}{{{CODE}}}{{{VERIFICATION_ID}}}", "9", "x"},
		{"no placeholder", "123456", "id"},
		{"", "123456", "id"},
		{"{{{{CODE}}}}", "1234", "id"},
		{"{{{{{{CODE}}}}}}", "1234", "id"},
		{"{{{CODE}}", "1234", "id"},
		{"{{CODE}}}", "1234", "id"},
		{"{{{code}}}", "1234", "id"},
		{"{{{CODE}}}", "{{{VERIFICATION_ID}}}", "leak"},
		{"{{{VERIFICATION_ID}}}", "x", "{{{CODE}}}"},
		{"{{{CO{{{CODE}}}DE}}}", "", "id"},
		{"{{{{{{CODE}}}CODE}}}", "", "id"},
		{"{{{CODE}}}", "CODE", "id"},
		{"\xff{{{CODE}}}\x00", "\xfe", "\x00"},
	} {
		f.Add(tc[0], tc[1], tc[2])
	}
	f.Fuzz(func(t *testing.T, body, code, id string) {
		out := Render(body, code, id)

		// One pass: with stand-ins that cannot be part of a placeholder,
		// no placeholder is left over.
		plain := Render(body, "\x00", "\x01")
		if strings.Contains(plain, PlaceholderCode) || strings.Contains(plain, PlaceholderVerificationID) {
			t.Fatalf("Render(%q) leaves a placeholder: %q", body, plain)
		}
		// The same holds for a real code and id, unless they are empty or
		// could complete a placeholder with the braces around them (a
		// code "CODE" inside "{{{{{{CODE}}}}}}"), or hold braces.
		if foreign(code) && foreign(id) && (strings.Contains(out, PlaceholderCode) || strings.Contains(out, PlaceholderVerificationID)) {
			t.Fatalf("Render(%q, %q, %q) = %q leaves a placeholder", body, code, id, out)
		}
		if strings.Contains(body, PlaceholderCode) && !strings.Contains(out, code) {
			t.Fatalf("Render(%q, %q, %q) = %q lacks the code", body, code, id, out)
		}
		if strings.Contains(body, PlaceholderVerificationID) && !strings.Contains(out, id) {
			t.Fatalf("Render(%q, %q, %q) = %q lacks the id", body, code, id, out)
		}
		if !strings.Contains(body, "{{{") && out != body {
			t.Fatalf("Render(%q) = %q, changed a body without placeholders", body, out)
		}
		// Every placeholder is replaced, each by exactly its value.
		wantLen := len(body) + strings.Count(body, PlaceholderCode)*(len(code)-len(PlaceholderCode)) +
			strings.Count(body, PlaceholderVerificationID)*(len(id)-len(PlaceholderVerificationID))
		if len(out) != wantLen {
			t.Fatalf("Render(%q, %q, %q) = %q, %d bytes, want %d", body, code, id, out, len(out), wantLen)
		}
	})
}

// foreign reports whether s is non-empty, holds no braces, and holds a
// character that appears in no placeholder's name, so it cannot help
// form a placeholder.
func foreign(s string) bool {
	return s != "" && !strings.ContainsAny(s, "{}") &&
		strings.ContainsFunc(s, func(r rune) bool { return !(r == '_' || (r >= 'A' && r <= 'Z')) })
}
