package httpapi

import (
	"encoding/json"
	"net/http"
)

// passkeyRoutes registers the passkey (WebAuthn) endpoints. The options
// they answer with are the standard PublicKeyCredentialCreationOptions and
// RequestOptions JSON, for navigator.credentials.create/get as they are.
func (s *Server) passkeyRoutes() {
	s.handle("POST /auth/passkeys/registration/begin", s.requireUser(s.handlePasskeyRegistrationBegin))
	s.handle("POST /auth/passkeys/registration/finish", s.requireUser(s.handlePasskeyRegistrationFinish))
	s.handle("GET /auth/passkeys", s.requireUser(s.handlePasskeys))
	s.handle("PATCH /auth/passkeys/{id}", s.requireUser(s.handleRenamePasskey))
	s.handle("DELETE /auth/passkeys/{id}", s.requireUser(s.handleDeletePasskey))
	s.handle("DELETE /auth/password", s.requireUser(s.handleRemovePassword))
	s.handle("POST /auth/passkeys/login/begin", s.limitIP(s.handlePasskeyLoginBegin))
	s.handle("POST /auth/passkeys/login/finish", s.limitIP(s.handlePasskeyLoginFinish))
	s.handle("POST /auth/login/passkey", s.limitIP(s.handleLoginPasskey))
}

// handlePasskeyRegistrationBegin handles POST /auth/passkeys/registration/begin.
func (s *Server) handlePasskeyRegistrationBegin(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	opts, err := s.Accounts.BeginPasskeyEnrolment(r.Context(), a.user, a.session, meta(r))
	s.reply(w, r, opts, err)
}

// handlePasskeyRegistrationFinish handles POST /auth/passkeys/registration/finish:
// the attestation response of navigator.credentials.create.
func (s *Server) handlePasskeyRegistrationFinish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string          `json:"processingId"`
		Name         string          `json:"name"`
		Credential   json.RawMessage `json:"credential"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	a := userFrom(r.Context())
	p, err := s.Accounts.FinishPasskeyEnrolment(r.Context(), a.user, a.session, req.ProcessingID, req.Name, req.Credential, meta(r))
	s.reply(w, r, p, err)
}

// handlePasskeys handles GET /auth/passkeys.
func (s *Server) handlePasskeys(w http.ResponseWriter, r *http.Request) {
	list, err := s.Accounts.Passkeys(r.Context(), userFrom(r.Context()).user)
	s.reply(w, r, map[string]any{"passkeys": list}, err)
}

// handleRenamePasskey handles PATCH /auth/passkeys/{id}.
func (s *Server) handleRenamePasskey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := s.Accounts.RenamePasskey(r.Context(), userFrom(r.Context()).user, r.PathValue("id"), req.Name)
	s.reply(w, r, p, err)
}

// handleDeletePasskey handles DELETE /auth/passkeys/{id}.
func (s *Server) handleDeletePasskey(w http.ResponseWriter, r *http.Request) {
	a := userFrom(r.Context())
	s.reply(w, r, okJSON, s.Accounts.DeletePasskey(r.Context(), a.user, a.session, r.PathValue("id"), meta(r)))
}

// handleRemovePassword handles DELETE /auth/password: passkeys only from then on.
func (s *Server) handleRemovePassword(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, okJSON, s.Accounts.RemovePassword(r.Context(), userFrom(r.Context()).user, userFrom(r.Context()).session, meta(r)))
}

// handlePasskeyLoginBegin handles POST /auth/passkeys/login/begin: a
// challenge for any passkey of this site (no email typed).
func (s *Server) handlePasskeyLoginBegin(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := s.Accounts.BeginPasskeyLogin(r.Context(), meta(r))
	s.reply(w, r, opts, err)
}

// handlePasskeyLoginFinish handles POST /auth/passkeys/login/finish: the
// assertion of navigator.credentials.get logs its user in.
func (s *Server) handlePasskeyLoginFinish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string          `json:"processingId"`
		Credential   json.RawMessage `json:"credential"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	tokens, err := s.Accounts.FinishPasskeyLogin(r.Context(), req.ProcessingID, req.Credential, meta(r))
	s.reply(w, r, tokensJSON{Tokens: tokens}, err)
}

// handleLoginPasskey handles POST /auth/login/passkey: the challenge for a
// passkey as the second factor of a login (or step-up); the assertion then
// goes to POST /auth/login/mfa with method "passkey".
func (s *Server) handleLoginPasskey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string `json:"processingId"`
	}
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	opts, err := s.Accounts.BeginPasskeyFactor(r.Context(), req.ProcessingID)
	s.reply(w, r, opts, err)
}
