package httpapi

import (
	"fmt"
	"net/http"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/account"
	"github.com/tessera-id/tessera/internal/policy"
)

// adminRoutes registers the admin API: API-client bearer tokens, of
// clients with the admin scope (the account service asks the policy;
// other clients get 403).
func (s *Server) adminRoutes() {
	s.handle("GET /admin/users", s.requireClient(s.handleListUsers))
	s.handle("POST /admin/imports", s.requireClient(s.handleImportUsers))
	s.handle("GET /admin/users/{id}", s.requireClient(s.handleGetUser))
	s.handle("DELETE /admin/users/{id}", s.requireClient(s.handleDeleteUser))
	s.handle("POST /admin/users/{id}/disable", s.requireClient(s.handleDisableUser))
	s.handle("POST /admin/users/{id}/enable", s.requireClient(s.handleEnableUser))
	s.handle("POST /admin/users/{id}/mfa/reset", s.requireClient(s.handleResetMFA))
	s.handle("DELETE /admin/users/{id}/sessions", s.requireClient(s.handleRevokeUserSessions))
}

// Limits of one import request: larger imports go in several requests,
// or through tessera user import.
const (
	maxImportUsers = 1000
	maxImportBytes = 4 << 20
)

func adminOf(r *http.Request) policy.Admin { return policy.AdminOf(clientFrom(r.Context())) }

// writeAdminUser answers with err, or else with the user u.
func (s *Server) writeAdminUser(w http.ResponseWriter, r *http.Request, u *tessera.User, err error) {
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK, "user": account.AdminView(u)})
}

// handleListUsers handles GET /admin/users: a page of the users the query
// selects, oldest first.
func (s *Server) handleListUsers(w http.ResponseWriter, r *http.Request) {
	q, err := account.ParseUserQuery(r.URL.Query().Get)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := s.Accounts.ListUsers(r.Context(), adminOf(r), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	users := make([]*account.AdminUserView, 0, len(page.Users))
	for _, u := range page.Users {
		users = append(users, account.AdminView(u))
	}
	body := map[string]any{"status": http.StatusOK, "users": users}
	if page.Next != "" {
		body["nextCursor"] = page.Next
	}
	writeJSON(w, http.StatusOK, body)
}

// handleGetUser handles GET /admin/users/{id}: one user, unmasked, with
// credentials and active sessions.
func (s *Server) handleGetUser(w http.ResponseWriter, r *http.Request) {
	d, err := s.Accounts.UserDetail(r.Context(), adminOf(r), r.PathValue("id"), meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sessions := make([]sessionJSON, 0, len(d.Sessions))
	for _, ss := range d.Sessions {
		sessions = append(sessions, sessionJSONOf(ss))
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK, "user": d.User, "credentials": d.Credentials, "sessions": sessions})
}

// handleDisableUser handles POST /admin/users/{id}/disable.
func (s *Server) handleDisableUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.Accounts.DisableUser(r.Context(), adminOf(r), r.PathValue("id"), meta(r))
	s.writeAdminUser(w, r, u, err)
}

// handleEnableUser handles POST /admin/users/{id}/enable.
func (s *Server) handleEnableUser(w http.ResponseWriter, r *http.Request) {
	u, err := s.Accounts.EnableUser(r.Context(), adminOf(r), r.PathValue("id"), meta(r))
	s.writeAdminUser(w, r, u, err)
}

// handleResetMFA handles POST /admin/users/{id}/mfa/reset.
func (s *Server) handleResetMFA(w http.ResponseWriter, r *http.Request) {
	u, err := s.Accounts.ResetMFA(r.Context(), adminOf(r), r.PathValue("id"), meta(r))
	s.writeAdminUser(w, r, u, err)
}

// handleDeleteUser handles DELETE /admin/users/{id}: erasure.
func (s *Server) handleDeleteUser(w http.ResponseWriter, r *http.Request) {
	s.reply(w, r, map[string]any{"status": http.StatusOK, "deleted": true},
		s.Accounts.DeleteUser(r.Context(), adminOf(r), r.PathValue("id"), meta(r)))
}

// handleRevokeUserSessions handles DELETE /admin/users/{id}/sessions.
func (s *Server) handleRevokeUserSessions(w http.ResponseWriter, r *http.Request) {
	n, err := s.Accounts.RevokeUserSessions(r.Context(), adminOf(r), r.PathValue("id"), meta(r))
	s.reply(w, r, map[string]any{"status": http.StatusOK, "revoked": n}, err)
}

// handleImportUsers handles POST /admin/imports: the records of
// "users" (the JSON-lines format of tessera user import, as an array),
// each reported on its own.
func (s *Server) handleImportUsers(w http.ResponseWriter, r *http.Request) {
	var req struct {
		FirebaseScrypt *account.FirebaseParams `json:"firebaseScrypt"`
		Users          []account.ImportRecord  `json:"users"`
	}
	if err := decodeJSONUpTo(w, r, &req, maxImportBytes); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Users == nil:
		s.writeError(w, r, tessera.Invalid(tessera.FieldError{Path: "users", Error: "is required: an array of users"}))
		return
	case len(req.Users) > maxImportUsers:
		s.writeError(w, r, tessera.Invalid(tessera.FieldError{Path: "users", Error: fmt.Sprintf("must hold at most %d users: send several requests", maxImportUsers)}))
		return
	}
	report, err := s.Accounts.ImportUsers(r.Context(), adminOf(r), req.Users, req.FirebaseScrypt, meta(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Status int `json:"status"`
		*account.ImportReport
	}{http.StatusOK, report})
}
