package httpapi

import (
	"net/http"

	"github.com/tessera-id/tessera/internal/account"
)

// ottRoutes registers the account-security flows of
// one-time-token-flows.txt: each /api/v1/token/... call sends a one-time
// token, and the matching /api/v1/... call consumes it.
func (s *Server) ottRoutes() {
	s.handle("POST /api/v1/token/password/recovery", s.limitIP(s.idempotent(scopeIP, s.handlePasswordRecoveryToken)))
	s.handle("POST /api/v1/password/recovery", s.limitIP(s.handlePasswordRecovery))

	s.handle("POST /api/v1/token/userKeys/recovery/verification", s.limitIP(s.idempotent(scopeIP, s.handleKeyRecoveryVerificationToken)))
	s.handle("POST /api/v1/token/userKeys/recovery/newKey", s.limitIP(s.idempotent(scopeIP, s.handleKeyRecoveryNewKeyToken)))
	s.handle("POST /api/v1/userKeys/recovery", s.limitIP(s.handleKeyRecovery))

	s.handle("POST /api/v1/token/userKeys/adding/email", s.requireUser(s.idempotent(scopeUser, s.handleKeyAddingToken(account.DestinationEmail, "newEmail"))))
	s.handle("POST /api/v1/token/userKeys/adding/phoneNumber", s.requireUser(s.idempotent(scopeUser, s.handleKeyAddingToken(account.DestinationPhone, "newPhoneNumber"))))
	s.handle("POST /api/v1/userKeys/adding", s.requireUser(s.handleKeyAdding))
	s.handle("POST /api/v1/token/userKeys/changing", s.requireUser(s.idempotent(scopeUser, s.handleKeyChangingToken)))
	s.handle("POST /api/v1/token/userKeys/changing/newKey", s.requireUser(s.idempotent(scopeUser, s.handleKeyChangingNewKeyToken)))
	s.handle("POST /api/v1/userKeys/changing", s.requireUser(s.handleKeyChanging))
	s.handle("POST /api/v1/token/userKeys/removing", s.requireUser(s.idempotent(scopeUser, s.handleKeyRemovingToken)))
	s.handle("POST /api/v1/userKeys/removing", s.requireUser(s.handleKeyRemoving))

	s.handle("POST /api/v1/token/antiPhishing/adding", s.requireUser(s.idempotent(scopeUser, s.handleAntiPhishingToken(false))))
	s.handle("POST /api/v1/token/antiPhishing/changing", s.requireUser(s.idempotent(scopeUser, s.handleAntiPhishingToken(true))))
	s.handle("POST /api/v1/antiPhishing/adding", s.requireUser(s.handleAntiPhishing(false)))
	s.handle("POST /api/v1/antiPhishing/changing", s.requireUser(s.handleAntiPhishing(true)))

	s.handle("POST /api/v1/token/mfa/disabling", s.requireUser(s.idempotent(scopeUser, s.handleMFADisablingToken)))
	s.handle("POST /api/v1/mfa/disabling", s.requireUser(s.handleMFADisabling))
}

// handlePasswordRecoveryToken handles POST /api/v1/token/password/recovery.
func (s *Server) handlePasswordRecoveryToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email        string `json:"email"`
		Destination  string `json:"destination"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Accounts.SendPasswordRecovery(r.Context(), req.Email, req.Destination, req.ProcessingID, meta(r))
	s.reply(w, r, sent, err)
}

// handlePasswordRecovery handles POST /api/v1/password/recovery: the
// processingId the token request answered with, the token and a new
// password. email and destination are accepted for older clients; the
// flow knows both.
func (s *Server) handlePasswordRecovery(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Email        string `json:"email"`
		Destination  string `json:"destination"`
		ProcessingID string `json:"processingId"`
		OneTimeToken string `json:"oneTimeToken"`
		NewPassword  string `json:"newPassword"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.reply(w, r, okJSON, s.Accounts.ResetPassword(r.Context(), req.ProcessingID, req.OneTimeToken, req.NewPassword, meta(r)))
}

// handleKeyRecoveryVerificationToken handles
// POST /api/v1/token/userKeys/recovery/verification.
func (s *Server) handleKeyRecoveryVerificationToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		KeyType      string `json:"keyType"`
		Destination  string `json:"destination"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Accounts.SendKeyRecoveryVerification(r.Context(), req.ProcessingID, req.KeyType, req.Destination)
	s.reply(w, r, sent, err)
}

// handleKeyRecoveryNewKeyToken handles POST /api/v1/token/userKeys/recovery/newKey.
func (s *Server) handleKeyRecoveryNewKeyToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Destination  string `json:"destination"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Accounts.SendKeyRecoveryNewKey(r.Context(), req.ProcessingID, req.Destination)
	s.reply(w, r, sent, err)
}

// handleKeyRecovery handles POST /api/v1/userKeys/recovery: both tokens
// replace the lost key.
func (s *Server) handleKeyRecovery(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID      string `json:"processingId"`
		KeyType           string `json:"keyType"`
		VerificationToken string `json:"verificationToken"`
		NewKey            string `json:"newKey"`
		NewKeyToken       string `json:"newKeyToken"`
		MFAMethod         string `json:"mfaMethod"`
		MFACode           string `json:"mfaCode"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Accounts.RecoverKey(r.Context(), req.ProcessingID, req.KeyType, req.VerificationToken, req.NewKey, req.NewKeyToken, req.MFAMethod, req.MFACode, meta(r))
	s.replyUser(w, r, u, err)
}

// handleKeyAddingToken handles POST /api/v1/token/userKeys/adding/email?newEmail=
// and .../adding/phoneNumber?newPhoneNumber=.
func (s *Server) handleKeyAddingToken(keyType, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sent, err := s.Accounts.SendKeyAdding(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, keyType, r.URL.Query().Get(param))
		s.reply(w, r, sent, err)
	}
}

// handleKeyAdding handles POST /api/v1/userKeys/adding.
func (s *Server) handleKeyAdding(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NewKey       string `json:"newKey"`
		OneTimeToken string `json:"oneTimeToken"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Accounts.AddKey(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, req.NewKey, req.OneTimeToken, meta(r))
	s.replyUser(w, r, u, err)
}

// handleKeyChangingToken handles POST /api/v1/token/userKeys/changing?keyType=.
func (s *Server) handleKeyChangingToken(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	sent, err := s.Accounts.SendKeyChanging(r.Context(), a.user, a.session, r.URL.Query().Get("keyType"), meta(r))
	s.reply(w, r, sent, err)
}

// handleKeyChangingNewKeyToken handles POST /api/v1/token/userKeys/changing/newKey.
func (s *Server) handleKeyChangingNewKeyToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OneTimeToken string `json:"oneTimeToken"`
		NewUserKey   string `json:"newUserKey"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sent, err := s.Accounts.SendKeyChangingNewKey(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, req.ProcessingID, req.OneTimeToken, req.NewUserKey)
	s.reply(w, r, sent, err)
}

// handleKeyChanging handles POST /api/v1/userKeys/changing.
func (s *Server) handleKeyChanging(w http.ResponseWriter, r *http.Request) {
	var req struct {
		NewUserKey   string `json:"newUserKey"`
		OneTimeToken string `json:"oneTimeToken"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	u, err := s.Accounts.ChangeKey(r.Context(), a.user, a.session, req.ProcessingID, req.NewUserKey, req.OneTimeToken, meta(r))
	s.replyUser(w, r, u, err)
}

// handleKeyRemovingToken handles POST /api/v1/token/userKeys/removing?keyType=.
func (s *Server) handleKeyRemovingToken(w http.ResponseWriter, r *http.Request) {
	sent, err := s.Accounts.SendKeyRemoving(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, r.URL.Query().Get("keyType"))
	s.reply(w, r, sent, err)
}

// handleKeyRemoving handles POST /api/v1/userKeys/removing.
func (s *Server) handleKeyRemoving(w http.ResponseWriter, r *http.Request) {
	var req struct {
		KeyType      string `json:"keyType"`
		OneTimeToken string `json:"oneTimeToken"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := s.Accounts.RemoveKey(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, req.KeyType, req.OneTimeToken, meta(r))
	s.replyUser(w, r, u, err)
}

// handleAntiPhishingToken handles POST /api/v1/token/antiPhishing/adding
// and .../changing (by email only).
func (s *Server) handleAntiPhishingToken(changing bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sent, err := s.Accounts.SendAntiPhishing(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, changing)
		s.reply(w, r, sent, err)
	}
}

// handleAntiPhishing handles POST /api/v1/antiPhishing/adding and .../changing.
func (s *Server) handleAntiPhishing(changing bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			OneTimeToken     string `json:"oneTimeToken"`
			AntiPhishingCode string `json:"antiPhishingCode"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		u, err := s.Accounts.SetAntiPhishing(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, changing, req.OneTimeToken, req.AntiPhishingCode, meta(r))
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeUser(w, u)
	}
}

// handleMFADisablingToken handles POST /api/v1/token/mfa/disabling.
func (s *Server) handleMFADisablingToken(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Destination string `json:"destination"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	sent, err := s.Accounts.SendMFADisabling(r.Context(), a.user, a.session, req.Destination, meta(r))
	s.reply(w, r, sent, err)
}

// handleMFADisabling handles POST /api/v1/mfa/disabling.
func (s *Server) handleMFADisabling(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Destination  string `json:"destination"`
		OneTimeToken string `json:"oneTimeToken"`
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	u, err := s.Accounts.DisableMFA(r.Context(), a.user, a.session, req.ProcessingID, req.Destination, req.OneTimeToken, meta(r))
	s.replyUser(w, r, u, err)
}
