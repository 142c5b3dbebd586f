package account

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
)

// A handoff gives an app the tokens of a login made on the hosted pages.
// The browser only ever carries a one-time code to the app's return URL;
// the app's backend exchanges it (POST /auth/exchange) for the ID and
// refresh token, so tokens never sit in a URL, the browser's history or a
// referrer. The code is 256 random bits, stored only as a keyed hash (the
// flow's id derives from it), usable once, for HandoffTTL, and only
// together with the return URL it was issued for: a code leaked from one
// app is worth nothing to another.

// HandoffTTL is how long a handoff code can be exchanged.
const HandoffTTL = 60 * time.Second

const stateHandoffIssued = "issued"

func (s *Service) handoffID(code string) string {
	return uuid.NewSHA1(uuid.NameSpaceOID, s.Keys.Hash("handoff", code)).String()
}

// handoffAD binds the sealed refresh token to its flow and return URL:
// opened with any other return URL, it fails.
func handoffAD(id, returnURL string) []byte {
	return []byte("handoff\x00" + id + "\x00" + returnURL)
}

// BeginHandoff stores the refresh token of session sess (just issued by a
// login on the pages) for returnURL and returns the one-time code that
// fetches it.
func (s *Service) BeginHandoff(ctx context.Context, sess *tessera.Session, refreshToken, returnURL string) (string, error) {
	if refreshToken == "" || returnURL == "" {
		return "", fmt.Errorf("handoff: a refresh token and a return URL are required")
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	code := base64.RawURLEncoding.EncodeToString(b)
	id := s.handoffID(code)
	sealed, err := s.Keys.Seal([]byte(refreshToken), handoffAD(id, returnURL))
	if err != nil {
		return "", err
	}
	now := s.now()
	f := &tessera.Flow{ID: id, Type: tessera.FlowHandoff, State: stateHandoffIssued, UserID: sess.UserID, SessionID: sess.ID, Secret: sealed,
		RequiredAAL: sess.AAL, AAL: sess.AAL, Methods: sess.AMR, CSRFSecret: newSecret(), MaxAttempts: 1, CreatedAt: now, ExpiresAt: now.Add(HandoffTTL)}
	if err := s.Store.CreateFlow(ctx, f); err != nil {
		return "", err
	}
	return code, nil
}

// ExchangeHandoff trades a handoff code and the return URL it was issued
// for against a fresh ID token and the session's refresh token. The code
// is spent by the first try, right or wrong: a code presented with
// another return URL is burnt too.
func (s *Service) ExchangeHandoff(ctx context.Context, code, returnURL string) (*Tokens, error) {
	if strings.TrimSpace(code) == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "code", Error: "is required"})
	}
	if returnURL == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "returnUrl", Error: "is required: the return URL the code was delivered to"})
	}
	invalid := tessera.Errorf(tessera.EINVALIDCODE, "Invalid, used or expired code")
	id := s.handoffID(strings.TrimSpace(code))
	f, err := s.Store.Flow(ctx, id)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND || (err == nil && f.Type != tessera.FlowHandoff) {
		return nil, invalid
	}
	if err != nil {
		return nil, err
	}
	if err := s.Store.UseFlow(ctx, id, s.now()); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, invalid
		}
		return nil, err
	}
	refresh, err := s.Keys.Open(f.Secret, handoffAD(id, returnURL))
	if err != nil {
		return nil, invalid
	}
	// The login itself was audited; the session must still be live (the
	// user may have logged out within the minute).
	u, sess, err := s.SessionUser(ctx, f.SessionID)
	if err != nil {
		return nil, err
	}
	idToken, exp, err := s.Tokens.Issue(ctx, u, sess)
	if err != nil {
		return nil, err
	}
	return &Tokens{IDToken: idToken, RefreshToken: string(refresh), ExpiresAt: exp}, nil
}
