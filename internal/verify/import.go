package verify

import (
	"context"
	"encoding/base32"
	"errors"
	"strings"

	"github.com/tessera-id/tessera"
)

// minTOTPSecret is the shortest authenticator secret taken on import:
// 80 bits, the 16 base32 characters many apps have used (RFC 4226 asks
// for 128 and recommends 160; Tessera makes 160).
const minTOTPSecret = 10

// NormalizeTOTPSecret checks a base32 authenticator secret as people and
// exports write it (any case, spaces, with or without padding) and
// returns it upper-case and unpadded.
func NormalizeTOTPSecret(secret string) (string, error) {
	s := strings.ToUpper(strings.TrimRight(strings.ReplaceAll(secret, " ", ""), "="))
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		return "", errors.New("must be base32 (RFC 4648)")
	}
	if len(raw) < minTOTPSecret {
		return "", errors.New("must be at least 80 bits (16 base32 characters)")
	}
	return s, nil
}

// ImportTOTPSecret stores an authenticator secret enrolled elsewhere as
// owner's consumer's verified secret, sealed like the engine's own. Codes
// are checked against it from the next time step the engine sees.
func (e *Engine) ImportTOTPSecret(ctx context.Context, owner, consumer, secret string) error {
	s, err := NormalizeTOTPSecret(secret)
	if err != nil {
		return tessera.Invalid(tessera.FieldError{Path: "totpSecret", Error: err.Error()})
	}
	sealed, err := e.Keys.Seal([]byte(s), totpAD(owner, consumer))
	if err != nil {
		return err
	}
	now := e.now()
	if err := e.Store.PutTemporaryTOTPSecret(ctx, &tessera.TOTPSecret{Owner: owner, Consumer: consumer, Sealed: sealed, CreatedAt: now}); err != nil {
		return err
	}
	// Step 0 (1970) marks it verified without using up any real step.
	return e.Store.AcceptTOTPStep(ctx, owner, consumer, 0, now)
}
