package tessera

import (
	"context"
	"time"
)

// UserQuery selects end users for the admin API's listing; empty fields
// select everything. Users come oldest first, by (CreatedAt, ID).
type UserQuery struct {
	Email  string // part of the address, case-insensitively
	Phone  string // part of the E.164 number
	Status UserStatus
	// CreatedFrom and CreatedTo bound the creation time: from inclusive,
	// to exclusive. LastLoginFrom and LastLoginTo do the same for the
	// last login (a user who never logged in has none, and is left out
	// when either is set).
	CreatedFrom, CreatedTo     time.Time
	LastLoginFrom, LastLoginTo time.Time
	// After continues a listing after the user it names (the last one of
	// the previous page); nil starts at the beginning.
	After *UserPosition
	Limit int
}

// UserPosition is where a user stands in the admin listing's order.
type UserPosition struct {
	CreatedAt time.Time
	ID        string
}

// Erasure names everything of one user that deleting the account removes:
// the store finds the account's own rows by UserID; the rest it finds by
// what the account layer names here.
type Erasure struct {
	UserID string
	// Addresses are the user's email and phone: the codes and messages
	// sent to them, the flows and audit events naming them, go too.
	Addresses []string
	// Owner is the engine owner of the account's codes and TOTP secret;
	// their consumers are the user's id and Addresses.
	Owner string
	// SendLimitKeys and IdempotencyScopes are the user's send-limit
	// counters and idempotency records.
	SendLimitKeys     []string
	IdempotencyScopes []string
}

// AdminStore is what the admin API needs beyond AccountStore.
type AdminStore interface {
	// ListUsers returns the users q selects, at most q.Limit of them.
	ListUsers(ctx context.Context, q UserQuery) ([]*User, error)
	// DeleteUser removes, in one transaction, every row of the user e
	// names; ENOTFOUND if there is no such user.
	DeleteUser(ctx context.Context, e Erasure) error
}
