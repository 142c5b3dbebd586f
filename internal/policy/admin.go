package policy

import (
	"fmt"

	"github.com/tessera-id/tessera"
)

// Admin is who asks for an admin action: an API client, or the operator
// at the command line (who has the database and keys already).
type Admin struct {
	// Name says who it was in audit events: "client NAME (ID)".
	Name string
	// Scoped is the admin scope: only scoped clients may administer.
	Scoped bool
}

// AdminOf is the admin an API client is.
func AdminOf(c *tessera.Client) Admin {
	return Admin{Name: fmt.Sprintf("client %s (%s)", c.Name, c.ID), Scoped: c.Admin}
}

// Operator is whoever runs the tessera command on the server.
var Operator = Admin{Name: "operator (command line)", Scoped: true}

// AdminAction is something done to end-user accounts from outside them.
type AdminAction string

// The admin actions.
const (
	ListUsers          AdminAction = "list_users"
	ReadUser           AdminAction = "read_user" // unmasked, with credentials and sessions
	DisableUser        AdminAction = "disable_user"
	EnableUser         AdminAction = "enable_user"
	DeleteUser         AdminAction = "delete_user"
	ResetMFA           AdminAction = "reset_mfa"
	RevokeUserSessions AdminAction = "revoke_sessions"
	ImportUsers        AdminAction = "import_users"
)

// MayAdminister returns nil if a may do action: every admin action takes
// the admin scope. An API client without it is refused (EFORBIDDEN): its
// token is good for the verification API only, and a verification API
// token leaking must not expose every account. End users never get here:
// their ID tokens are not API-client tokens.
func MayAdminister(a Admin, action AdminAction) error {
	if !a.Scoped {
		return tessera.Errorf(tessera.EFORBIDDEN, "This API client has no admin scope (%s): create one with tessera client create --admin NAME", action)
	}
	return nil
}

// What an admin action does to an account, beyond its name:
//   - disabling ends every session at once (a disabled account's refresh
//     tokens and ID tokens stop working; enabling it does not bring them
//     back), and no login, refresh or step-up succeeds while disabled;
//   - resetting MFA removes every second factor (authenticator app,
//     texted codes as a factor, passkeys, recovery codes), ends every
//     session and tells the user by email: the next login is with the
//     password alone, and the user enrols factors again;
//   - deleting erases every row of the account; what stays is an audit
//     event that names the admin, not the user.
