package verify

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
)

// The named symbol sets of generateCode.symbolSet. Any other entry adds its
// own characters, so ["DIGITS", "xyz"] draws from 0-9 plus x, y and z.
var symbolSets = map[string]string{
	"DIGITS":  "0123456789",
	"alphas":  "abcdefghijklmnopqrstuvwxyz",
	"ALPHAS":  "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
	"SYMBOLS": "!#$%&*+-=?@^_~",
}

// Code length bounds: shorter codes are too easy to guess even with the
// attempts cap; longer ones only bloat messages.
const (
	MinCodeLength     = 4
	MaxCodeLength     = 128
	DefaultCodeLength = 6
)

// Alphabet turns a symbolSet into the characters a code is drawn from, each
// once, in a stable order.
func Alphabet(symbolSet []string) (string, error) {
	if len(symbolSet) == 0 {
		return symbolSets["DIGITS"], nil
	}
	var b strings.Builder
	seen := map[rune]bool{}
	for _, entry := range symbolSet {
		chars, named := symbolSets[entry]
		if !named {
			chars = entry
		}
		if chars == "" {
			return "", errors.New("entries must not be empty")
		}
		for _, r := range chars {
			if r > unicode.MaxASCII || !unicode.IsPrint(r) || r == ' ' {
				return "", fmt.Errorf("%q is not a named set (DIGITS, alphas, ALPHAS, SYMBOLS) nor printable ASCII characters", entry)
			}
			if !seen[r] {
				seen[r] = true
				b.WriteRune(r)
			}
		}
	}
	if b.Len() < 2 {
		return "", errors.New("needs at least two distinct characters")
	}
	return b.String(), nil
}

// GenerateCode draws length characters from alphabet (2 to 256
// characters) using random, which should be crypto/rand.Reader outside
// tests. Bytes that would favour some characters are rejected, so every
// character is equally likely (no modulo bias).
func GenerateCode(random io.Reader, length int, alphabet string) (string, error) {
	n := len(alphabet)
	if n < 2 || n > 256 {
		return "", errors.New("alphabet must have 2 to 256 characters")
	}
	// limit is the largest multiple of n that fits in a byte; bytes at or
	// above it are thrown away.
	limit := 256 - 256%n
	out := make([]byte, 0, length)
	buf := make([]byte, length+length/2+8)
	for len(out) < length {
		if _, err := io.ReadFull(random, buf); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit {
				out = append(out, alphabet[int(b)%n])
				if len(out) == length {
					break
				}
			}
		}
	}
	return string(out), nil
}
