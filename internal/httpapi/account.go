package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/token"
)

// accountRoutes registers the end-user accounts API.
func (s *Server) accountRoutes() {
	s.handle("POST /auth/register", s.limitIP(s.idempotent(scopeIP, s.handleRegister)))
	s.handle("POST /auth/register/confirm", s.limitIP(s.handleRegisterConfirm))
	s.handle("POST /auth/login", s.limitIP(s.handleLogin))
	s.handle("POST /auth/login/mfa", s.limitIP(s.handleLoginMFA))
	s.handle("POST /auth/login/refresh", s.limitIP(s.handleRefresh))
	s.handle("POST /api/v1/token/login", s.limitIP(s.idempotent(scopeIP, s.handleLoginToken)))
	s.handle("GET /.well-known/jwks.json", s.handleJWKS)
	s.handle("POST /auth/exchange", s.limitIP(s.handleExchange))

	s.handle("GET /auth/me", s.requireUser(s.handleMe))
	s.handle("GET /auth/userinfo", s.requireUser(s.handleUserInfo))
	s.handle("PATCH /auth/me", s.requireUser(s.handlePatchMe))
	s.handle("POST /auth/logout", s.requireUser(s.handleLogout))
	s.handle("POST /auth/reauthenticate", s.requireUser(s.handleReauthenticate))
	s.handle("GET /auth/sessions", s.requireUser(s.handleSessions))
	s.handle("DELETE /auth/sessions/{id}", s.requireUser(s.handleRevokeSession))

	// Privileged: each account operation asks the policy (Service.Authorize)
	// first, so the JSON API and the pages to come share one gate.
	s.handle("POST /auth/password", s.requireUser(s.handleChangePassword))
	s.handle("POST /auth/otp/methods/sms", s.requireUser(s.idempotent(scopeUser, s.handleAddPhone)))
	s.handle("POST /auth/otp/methods/totp", s.requireUser(s.handleCreateTOTP))
	s.handle("DELETE /auth/otp/methods/totp", s.requireUser(s.handleDeleteTOTP))
	s.handle("GET /auth/otp/code", s.requireUser(s.idempotent(scopeUser, s.handleSendCode)))
	s.handle("POST /auth/otp/code", s.requireUser(s.handleVerifyChannel))
	s.handle("POST /auth/mfa/recovery-codes", s.requireUser(s.handleRecoveryCodes))
	s.ottRoutes()
	s.passkeyRoutes()
}

type userKey struct{}

type authed struct {
	user    *tessera.User
	session *tessera.Session
}

// requireUser lets a request through only with a valid ID token of an
// active session.
func (s *Server) requireUser(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		token, ok := bearer(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tessera"`)
			s.writeError(w, r, tessera.Errorf(tessera.EUNAUTHORIZED, "Authorization: Bearer <idToken> is required"))
			return
		}
		u, sess, err := s.Accounts.Authenticate(r.Context(), token)
		if err != nil {
			if tessera.ErrorCode(err) == tessera.EUNAUTHORIZED {
				w.Header().Set("WWW-Authenticate", `Bearer realm="tessera", error="invalid_token"`)
			}
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(context.WithValue(r.Context(), userKey{}, &authed{u, sess})))
	}
}

func userFrom(ctx context.Context) *authed { return ctx.Value(userKey{}).(*authed) }

// meta describes the client of r. The user agent is the client's to
// choose: it is made valid UTF-8 and clipped here, before it is stored.
func meta(r *http.Request) account.Meta {
	return account.Meta{UserAgent: headerValue(r.UserAgent(), maxHeaderValue), IP: clientIPFrom(r.Context())}
}

// The accounts API answers with the reference's shapes, without the
// verification API's "status" envelope: there "status" is the user's
// status. Errors have the common error shape.

type userJSON struct {
	*account.UserView
	RecoveryCodes []string `json:"recoveryCodes,omitempty"`
}

func (s *Server) writeUser(w http.ResponseWriter, u *tessera.User) {
	writeJSON(w, http.StatusOK, userJSON{UserView: account.View(u)})
}

type tokensJSON struct {
	*account.Tokens
	User *account.UserView `json:"user,omitempty"`
}

// okJSON is the body of a success that has nothing else to say.
var okJSON = map[string]bool{"ok": true}

// handleRegister handles POST /auth/register: always 202, so the answer
// never tells whether the address has an account.
func (s *Server) handleRegister(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := s.Accounts.Register(r.Context(), req.Email, req.Password, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"message": "Check your email for a confirmation code, then POST it to /auth/register/confirm",
		"processingId": id})
}

// handleRegisterConfirm handles POST /auth/register/confirm: the emailed
// code confirms the address and logs the user in.
func (s *Server) handleRegisterConfirm(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email        string `json:"email"`
		Code         string `json:"code"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tokens, u, err := s.Accounts.ConfirmRegistration(r.Context(), req.Email, req.Code, req.ProcessingID, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, tokensJSON{Tokens: tokens, User: account.View(u)})
}

// handleLogin handles POST /auth/login.
func (s *Server) handleLogin(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.Accounts.Login(r.Context(), req.Email, req.Password, meta(r))
	s.replyLogin(w, r, res, err)
}

// replyLogin answers with err, tokens, or a challenge to finish with a
// second factor.
func (s *Server) replyLogin(w http.ResponseWriter, r *http.Request, res *account.LoginResult, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.Challenge != nil {
		writeJSON(w, http.StatusOK, struct {
			MFARequired bool `json:"mfaRequired"`
			*account.Challenge
		}{true, res.Challenge})
		return
	}
	writeJSON(w, http.StatusOK, tokensJSON{Tokens: res.Tokens})
}

// handleLoginMFA handles POST /auth/login/mfa: the second step of an MFA
// login, or of a step-up (then without a refresh token: the session keeps
// its own).
func (s *Server) handleLoginMFA(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string          `json:"processingId"`
		Method       string          `json:"method"`
		Code         string          `json:"code"`
		Credential   json.RawMessage `json:"credential"` // a passkey's assertion, for method "passkey"
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	proof := req.Code
	if req.Method == account.FactorPasskey {
		proof = string(req.Credential)
	}
	tokens, err := s.Accounts.CompleteLogin(r.Context(), req.ProcessingID, req.Method, proof, meta(r))
	s.reply(w, r, tokensJSON{Tokens: tokens}, err)
}

// handleExchange handles POST /auth/exchange: an app's backend trades the
// one-time code the hosted pages sent the browser back with (and the
// return URL it arrived at) for the tokens of that login.
func (s *Server) handleExchange(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Code      string `json:"code"`
		ReturnURL string `json:"returnUrl"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tokens, err := s.Accounts.ExchangeHandoff(r.Context(), req.Code, req.ReturnURL)
	s.reply(w, r, tokensJSON{Tokens: tokens}, err)
}

// handleRefresh handles POST /auth/login/refresh.
func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RefreshToken string `json:"refreshToken"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tokens, err := s.Accounts.Refresh(r.Context(), req.RefreshToken, meta(r))
	s.reply(w, r, tokensJSON{Tokens: tokens}, err)
}

// handleLoginToken handles POST /api/v1/token/login: the one-time token
// that finishes an MFA login, by email or SMS.
func (s *Server) handleLoginToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Destination  string `json:"destination"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Accounts.SendLoginCode(r.Context(), req.ProcessingID, req.Destination)
	s.reply(w, r, sent, err)
}

// reply answers with err, or else with body as 200 JSON.
func (s *Server) reply(w http.ResponseWriter, r *http.Request, body any, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// replyUser answers with err, or else with the user object of u.
func (s *Server) replyUser(w http.ResponseWriter, r *http.Request, u *tessera.User, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeUser(w, u)
}

// handleJWKS handles GET /.well-known/jwks.json: the keys that verify ID
// tokens.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	body, err := s.Accounts.Tokens.JWKS(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(token.JWKSMaxAge.Seconds())))
	w.Write(body)
}

// handleReauthenticate handles POST /auth/reauthenticate: the step-up
// that makes the session privileged again. With MFA on it answers like a
// login that needs its second factor.
func (s *Server) handleReauthenticate(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	res, err := s.Accounts.Reauthenticate(r.Context(), a.user, a.session, req.Password, meta(r))
	s.replyLogin(w, r, res, err)
}

// handleMe handles GET /auth/me: the user object, email and phone masked
// as the accounts API shows them everywhere.
func (s *Server) handleMe(w http.ResponseWriter, r *http.Request) {
	s.writeUser(w, userFrom(r.Context()).user)
}

// handleUserInfo handles GET /auth/userinfo: the user's own claims,
// unmasked, as OpenID Connect's UserInfo endpoint answers them, read from
// the account now (not from the token) and whichever claims ID tokens
// are configured to carry.
func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	writeJSON(w, http.StatusOK, token.UserInfoOf(a.user, a.session))
}

// handlePatchMe handles PATCH /auth/me: the user's own settings, today
// locale (the language of their messages). Any other field is refused by
// the strict decoding of the accounts API, not ignored: the email, the
// phone and the factors change only through their own flows.
func (s *Server) handlePatchMe(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Locale *string `json:"locale"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := userFrom(r.Context()).user
	if req.Locale == nil {
		s.writeUser(w, u)
		return
	}
	u, err := s.Accounts.SetLocale(r.Context(), u, *req.Locale)
	s.replyUser(w, r, u, err)
}

// handleLogout handles POST /auth/logout: the current session ends.
func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	s.reply(w, r, okJSON, s.Accounts.Logout(r.Context(), a.user, a.session, meta(r)))
}

// handleChangePassword handles POST /auth/password.
func (s *Server) handleChangePassword(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OldPassword string `json:"oldPassword"`
		NewPassword string `json:"newPassword"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	s.reply(w, r, okJSON, s.Accounts.ChangePassword(r.Context(), a.user, a.session, req.OldPassword, req.NewPassword, meta(r)))
}

// sessionJSON is a session as the accounts and admin APIs show it.
type sessionJSON struct {
	ID         string    `json:"id"`
	UserAgent  string    `json:"userAgent"`
	IP         string    `json:"ip"`
	AMR        []string  `json:"amr"`
	AAL        int       `json:"aal"`
	AuthTime   time.Time `json:"authTime"`
	CreatedAt  time.Time `json:"createdAt"`
	LastUsedAt time.Time `json:"lastUsedAt"`
	ExpiresAt  time.Time `json:"expiresAt"`
}

func sessionJSONOf(ss *tessera.Session) sessionJSON {
	return sessionJSON{ss.ID, ss.UserAgent, ss.IP, ss.AMR, ss.AAL, ss.AuthTime, ss.CreatedAt, ss.LastUsedAt, ss.ExpiresAt}
}

// ownSessionJSON is one of the user's own sessions, marked when it is the
// one asking.
type ownSessionJSON struct {
	sessionJSON
	Current bool `json:"current"`
}

// handleSessions handles GET /auth/sessions.
func (s *Server) handleSessions(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	list, err := s.Accounts.Sessions(r.Context(), a.user)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]ownSessionJSON, 0, len(list))
	for _, ss := range list {
		out = append(out, ownSessionJSON{sessionJSONOf(ss), ss.ID == a.session.ID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": out})
}

// handleRevokeSession handles DELETE /auth/sessions/{id}.
func (s *Server) handleRevokeSession(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, okJSON, s.Accounts.RevokeSession(r.Context(), userFrom(r.Context()).user, r.PathValue("id"), meta(r)))
}

// handleAddPhone handles POST /auth/otp/methods/sms.
func (s *Server) handleAddPhone(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Phone   string `json:"phone"`
		Country string `json:"country"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Accounts.AddPhone(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, req.Phone, req.Country)
	s.replyUser(w, r, u, err)
}

// handleCreateTOTP handles POST /auth/otp/methods/totp: the user object
// plus the new secret's otpauth URI and a QR code of it.
func (s *Server) handleCreateTOTP(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	enrol, err := s.Accounts.CreateTOTP(r.Context(), a.user, a.session)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		userJSON
		TOTPURI string `json:"totpUri"`
		QRCode  string `json:"qrCode"`
	}{userJSON{UserView: account.View(a.user)}, enrol.URI, enrol.QRCode})
}

// handleDeleteTOTP handles DELETE /auth/otp/methods/totp with x-otp.
func (s *Server) handleDeleteTOTP(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	u, err := s.Accounts.DeleteTOTP(r.Context(), a.user, a.session, r.Header.Get("x-otp"), meta(r))
	s.replyUser(w, r, u, err)
}

// handleSendCode handles GET /auth/otp/code?method=email|sms.
func (s *Server) handleSendCode(w http.ResponseWriter, r *http.Request) {
	sent, err := s.Accounts.SendChannelCode(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, r.URL.Query().Get("method"))
	s.reply(w, r, sent, err)
}

// handleVerifyChannel handles POST /auth/otp/code with x-otp and
// {"channel": "email"|"sms"|"totp"}.
func (s *Server) handleVerifyChannel(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Channel string `json:"channel"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	out, err := s.Accounts.VerifyChannel(r.Context(), a.user, a.session, req.Channel, r.Header.Get("x-otp"), meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, userJSON{UserView: account.View(out.User), RecoveryCodes: out.RecoveryCodes})
}

// handleRecoveryCodes handles POST /auth/mfa/recovery-codes with x-otp: a
// new set of recovery codes; the old set stops working.
func (s *Server) handleRecoveryCodes(w http.ResponseWriter, r *http.Request) {
	codes, err := s.Accounts.RegenerateRecoveryCodes(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, r.Header.Get("x-otp"), meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recoveryCodes": codes})
}
