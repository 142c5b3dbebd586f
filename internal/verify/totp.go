package verify

import (
	"fmt"
	"io"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP parameters (RFC 6238 as authenticator apps implement it): SHA1,
// 6 digits, 30-second steps, and one step of clock drift either way.
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	totpSkew   = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// newTOTPKey makes a fresh 160-bit secret and its otpauth:// URI.
func newTOTPKey(random io.Reader, issuer, account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{
		Issuer:      issuer,
		AccountName: account,
		Period:      totpPeriod,
		SecretSize:  20,
		Digits:      totpDigits,
		Algorithm:   otp.AlgorithmSHA1,
		Rand:        random,
	})
}

// matchTOTP returns the time step whose code equals code, looking at the
// step of now and one either side. Every candidate is computed and compared
// in constant time, so timing does not tell which step matched.
func matchTOTP(secret, code string, now time.Time) (step int64, ok bool, err error) {
	current := now.Unix() / totpPeriod
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		s := current + d
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false, fmt.Errorf("totp: %w", err)
		}
		if equalStrings(want, code) && !ok {
			step, ok = s, true
		}
	}
	return step, ok, nil
}
