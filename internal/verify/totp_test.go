package verify

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"
)

// rfcSecret is the SHA1 key of RFC 6238 Appendix B, "12345678901234567890".
const rfcSecret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// totpCode is an independent RFC 4226/6238 implementation: the HOTP value
// of step under key, as digits decimal digits.
func totpCode(key []byte, step int64, digits int) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	m := hmac.New(sha1.New, key)
	m.Write(msg[:])
	sum := m.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// decodeBase32 decodes a TOTP secret as authenticator apps do: case and
// padding do not matter.
func decodeBase32(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(strings.ToUpper(s), "="))
	if err != nil {
		t.Fatalf("decode base32 secret %q: %v", s, err)
	}
	return b
}

var rfc6238SHA1 = []struct {
	unix  int64
	code8 string
}{
	{59, "94287082"},
	{1111111109, "07081804"},
	{1111111111, "14050471"},
	{1234567890, "89005924"},
	{2000000000, "69279037"},
	{20000000000, "65353130"},
}

// TestTOTPHelper checks the test's own implementation against the RFC, so
// the engine tests that use it rest on something known to be right.
func TestTOTPHelper(t *testing.T) {
	key := decodeBase32(t, rfcSecret)
	if string(key) != "12345678901234567890" {
		t.Fatalf("decoded secret = %q", key)
	}
	for _, tc := range rfc6238SHA1 {
		if got := totpCode(key, tc.unix/30, 8); got != tc.code8 {
			t.Errorf("T=%d: helper gives %s, RFC says %s", tc.unix, got, tc.code8)
		}
	}
}

func TestMatchTOTPRFCVectors(t *testing.T) {
	key := decodeBase32(t, rfcSecret)
	for _, tc := range rfc6238SHA1 {
		t.Run(fmt.Sprint(tc.unix), func(t *testing.T) {
			now := time.Unix(tc.unix, 0)
			step := tc.unix / 30
			code6 := tc.code8[2:]

			got, ok, err := matchTOTP(rfcSecret, code6, now)
			if err != nil || !ok || got != step {
				t.Fatalf("matchTOTP(%s) = step %d, %v, %v; want step %d, true", code6, got, ok, err, step)
			}

			for _, d := range []int64{-1, 1} {
				code := totpCode(key, step+d, 6)
				got, ok, err := matchTOTP(rfcSecret, code, now)
				if err != nil || !ok || got != step+d {
					t.Errorf("code of step%+d (%s): step %d, %v, %v; want step %d, true", d, code, got, ok, err, step+d)
				}
			}

			near := map[string]bool{}
			for d := int64(-1); d <= 1; d++ {
				near[totpCode(key, step+d, 6)] = true
			}
			for _, d := range []int64{-2, 2, -3, 3} {
				code := totpCode(key, step+d, 6)
				if near[code] {
					continue // the same digits as an accepted step; nothing to learn
				}
				if _, ok, err := matchTOTP(rfcSecret, code, now); ok || err != nil {
					t.Errorf("code of step%+d (%s) matched (err %v); only one step of skew is allowed", d, code, err)
				}
			}

			wrong := []string{"", "00000", "0000000", code6[:5], tc.code8}
			for i := range 10 {
				if c := code6[:5] + fmt.Sprint(i); !near[c] {
					wrong = append(wrong, c)
				}
			}
			for _, code := range wrong {
				if _, ok, err := matchTOTP(rfcSecret, code, now); ok || err != nil {
					t.Errorf("wrong code %q matched (err %v)", code, err)
				}
			}
		})
	}
}

func TestMatchTOTPBadSecret(t *testing.T) {
	if _, ok, err := matchTOTP("not base32!", "123456", time.Unix(59, 0)); ok || err == nil {
		t.Errorf("matchTOTP with a malformed secret = %v, %v; want an error", ok, err)
	}
}
