package verify

import (
	"bytes"
	"crypto/rand"
	"errors"
	"math"
	"strings"
	"testing"
)

const (
	digits  = "0123456789"
	lower   = "abcdefghijklmnopqrstuvwxyz"
	upper   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	symbols = "!#$%&*+-=?@^_~"
)

func TestAlphabet(t *testing.T) {
	tests := []struct {
		name    string
		set     []string
		want    string
		wantErr bool
	}{
		{name: "nil defaults to digits", set: nil, want: digits},
		{name: "empty list defaults to digits", set: []string{}, want: digits},
		{name: "DIGITS", set: []string{"DIGITS"}, want: digits},
		{name: "alphas", set: []string{"alphas"}, want: lower},
		{name: "ALPHAS", set: []string{"ALPHAS"}, want: upper},
		{name: "SYMBOLS", set: []string{"SYMBOLS"}, want: symbols},
		{name: "named sets keep their order", set: []string{"ALPHAS", "DIGITS"}, want: upper + digits},
		{name: "all named sets", set: []string{"DIGITS", "alphas", "ALPHAS", "SYMBOLS"}, want: digits + lower + upper + symbols},
		{name: "named set plus literal characters", set: []string{"DIGITS", "xyz"}, want: digits + "xyz"},
		{name: "literal characters only", set: []string{"ab"}, want: "ab"},
		{name: "duplicates within an entry", set: []string{"aabbab"}, want: "ab"},
		{name: "literal overlapping a named set", set: []string{"DIGITS", "0123x"}, want: digits + "x"},
		{name: "named set repeated", set: []string{"DIGITS", "DIGITS"}, want: digits},
		{name: "single characters across entries", set: []string{"a", "b"}, want: "ab"},
		{name: "printable punctuation", set: []string{"<>"}, want: "<>"},

		{name: "empty entry", set: []string{""}, wantErr: true},
		{name: "empty entry after a valid one", set: []string{"DIGITS", ""}, wantErr: true},
		{name: "non-ASCII letter", set: []string{"aé"}, wantErr: true},
		{name: "non-ASCII digit", set: []string{"٠١"}, wantErr: true},
		{name: "space", set: []string{"a b"}, wantErr: true},
		{name: "tab", set: []string{"a\tb"}, wantErr: true},
		{name: "newline", set: []string{"ab\n"}, wantErr: true},
		{name: "NUL", set: []string{"ab\x00"}, wantErr: true},
		{name: "DEL", set: []string{"ab\x7f"}, wantErr: true},
		{name: "single character", set: []string{"a"}, wantErr: true},
		{name: "single character repeated", set: []string{"aaaa"}, wantErr: true},
		{name: "single character in two entries", set: []string{"a", "a"}, wantErr: true},
		{name: "bad entry after named set", set: []string{"DIGITS", "é"}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Alphabet(tc.set)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Alphabet(%q) = %q, want an error", tc.set, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Alphabet(%q): %v", tc.set, err)
			}
			if got != tc.want {
				t.Errorf("Alphabet(%q) = %q, want %q", tc.set, got, tc.want)
			}
		})
	}
}

// cyclicReader returns its pattern over and over.
type cyclicReader struct {
	pattern []byte
	i       int
}

func (r *cyclicReader) Read(p []byte) (int, error) {
	for n := range p {
		p[n] = r.pattern[r.i%len(r.pattern)]
		r.i++
	}
	return len(p), nil
}

func TestGenerateCodeRejectsBiasedBytes(t *testing.T) {
	alnum := digits + lower + upper // 62 characters: bytes >= 248 are rejected
	tests := []struct {
		name     string
		alphabet string
		length   int
		pattern  []byte
		want     string
	}{
		{
			// 256 % 10 = 6: bytes 250-255 would favour 0-5.
			name:     "10 characters skip 250-255",
			alphabet: digits, length: 6,
			pattern: []byte{250, 251, 252, 253, 254, 255, 0, 255, 19, 249, 250, 37, 100, 5},
			want:    "099705",
		},
		{
			name:     "62 characters skip 248-255",
			alphabet: alnum, length: 6,
			pattern: []byte{248, 255, 61, 62, 247, 0, 200, 123, 249},
			want:    "Z0Z0eZ",
		},
		{
			name:     "3 characters skip only 255",
			alphabet: "xyz", length: 4,
			pattern: []byte{255, 254, 0, 1, 255, 2},
			want:    "zxyz",
		},
		{
			name:     "2 characters use every byte",
			alphabet: "ab", length: 4,
			pattern: []byte{0, 1, 2, 255},
			want:    "abab",
		},
		{
			name:     "a long run of rejected bytes is skipped",
			alphabet: digits, length: 4,
			pattern: append(bytes.Repeat([]byte{255}, 100), 3, 4, 5, 6, 7, 8),
			want:    "3456",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := GenerateCode(&cyclicReader{pattern: tc.pattern}, tc.length, tc.alphabet)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("GenerateCode = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestGenerateCodeLengthAndAlphabet(t *testing.T) {
	tests := []struct {
		length   int
		alphabet string
	}{
		{MinCodeLength, digits},
		{DefaultCodeLength, digits},
		{8, upper},
		{20, "ab"},
		{MaxCodeLength, digits + lower + upper + symbols},
	}
	for _, tc := range tests {
		for range 50 {
			code, err := GenerateCode(rand.Reader, tc.length, tc.alphabet)
			if err != nil {
				t.Fatal(err)
			}
			if len(code) != tc.length {
				t.Fatalf("GenerateCode(%d, %q) = %q: length %d", tc.length, tc.alphabet, code, len(code))
			}
			for _, c := range code {
				if !strings.ContainsRune(tc.alphabet, c) {
					t.Fatalf("GenerateCode(%d, %q) = %q: %q is not in the alphabet", tc.length, tc.alphabet, code, c)
				}
			}
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestGenerateCodeErrors(t *testing.T) {
	gone := errors.New("entropy source gone")
	t.Run("failing reader", func(t *testing.T) {
		code, err := GenerateCode(errReader{gone}, 6, digits)
		if !errors.Is(err, gone) {
			t.Fatalf("GenerateCode = %q, %v; want an error wrapping %v", code, err, gone)
		}
	})
	t.Run("reader runs dry", func(t *testing.T) {
		code, err := GenerateCode(bytes.NewReader([]byte{1, 2, 3}), 6, digits)
		if err == nil {
			t.Fatalf("GenerateCode = %q, want an error", code)
		}
	})
	t.Run("reader runs dry with only rejected bytes", func(t *testing.T) {
		code, err := GenerateCode(bytes.NewReader(bytes.Repeat([]byte{255}, 1000)), 6, digits)
		if err == nil {
			t.Fatalf("GenerateCode = %q, want an error", code)
		}
	})
	for _, alphabet := range []string{"", "a"} {
		t.Run("alphabet "+alphabet, func(t *testing.T) {
			code, err := GenerateCode(rand.Reader, 6, alphabet)
			if err == nil {
				t.Fatalf("GenerateCode(%q) = %q, want an error", alphabet, code)
			}
		})
	}
}

// TestGenerateCodeUniform checks with a chi-square test that every
// character is equally likely. The sample is big enough that the modulo
// bias of a plain byte%10 (bytes 250-255 favour 0-5) would fail it by far,
// and the threshold (p < 1e-6) keeps a correct generator from failing by
// chance.
func TestGenerateCodeUniform(t *testing.T) {
	const codes, length = 10_000, 128
	for _, alphabet := range []string{digits, digits + lower + upper} {
		counts := map[rune]int{}
		for range codes {
			code, err := GenerateCode(rand.Reader, length, alphabet)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range code {
				counts[c]++
			}
		}
		k := len(alphabet)
		expected := float64(codes*length) / float64(k)
		chi2 := 0.0
		for _, c := range alphabet {
			d := float64(counts[c]) - expected
			chi2 += d * d / expected
		}
		if limit := chiSquareLimit(k - 1); chi2 > limit {
			t.Errorf("alphabet of %d: chi-square %.1f over %.1f (p < 1e-6); counts %v", k, chi2, limit, counts)
		}
	}
}

// chiSquareLimit approximates the chi-square value with df degrees of
// freedom that is exceeded with probability 1e-6 (Wilson–Hilferty).
func chiSquareLimit(df int) float64 {
	const z = 4.753 // standard normal upper 1e-6 quantile
	k := float64(df)
	return k * math.Pow(1-2/(9*k)+z*math.Sqrt(2/(9*k)), 3)
}
