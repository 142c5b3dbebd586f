package account

import (
	"context"
	"strings"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/i18n"
)

// SetLocale sets the language of the messages Tessera sends u: one of
// i18n.Languages(), or "" to follow the Accept-Language of the request
// that causes each message. Any session of the user may change it, as it
// may rename a passkey: it changes what messages say, not who may act, and
// every notice keeps its anti-phishing line whatever the language.
func (s *Service) SetLocale(ctx context.Context, u *tessera.User, locale string) (*tessera.User, error) {
	if locale != "" && !i18n.Supported(locale) {
		return nil, tessera.Invalid(tessera.FieldError{Path: "locale",
			Error: "must be one of " + strings.Join(i18n.Languages(), ", ") + ", or empty to follow Accept-Language"})
	}
	if err := s.Store.SetLocale(ctx, u.ID, locale); err != nil {
		return nil, err
	}
	return s.Store.User(ctx, u.ID)
}
