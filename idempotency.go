package tessera

import (
	"context"
	"time"
)

// Error codes of the Idempotency-Key header.
const (
	EIDEMMISMATCH = "idempotency_mismatch" // the key was used before with another request
	EINPROGRESS   = "in_progress"          // the first request with this key has not been answered yet
)

// IdempotencyRecord is one Idempotency-Key of one caller on one route: a
// claim while the first request with it runs, then that request's answer.
type IdempotencyRecord struct {
	// Scope is who used the key ("client:<id>", "user:<id>",
	// "ip:<address>"); Route is the route pattern; Key is the header's
	// value. The three together identify the record.
	Scope, Route, Key string
	// RequestHash fingerprints the request (path, query and body), keyed
	// with the server's MAC key, so a key reused for another request is
	// told apart without storing the request.
	RequestHash []byte
	// Claim is a random token of the request that holds the record; only
	// that request may answer or release it.
	Claim string
	// Status is the HTTP status of the answer, 0 while the claim runs.
	Status int
	// Sealed is the answer's body, encrypted with the server's keys
	// (answers can hold a TOTP secret and personal data).
	Sealed []byte
	// CreatedAt is when the claim was made; ExpiresAt when the key is
	// forgotten.
	CreatedAt, ExpiresAt time.Time
}

// IdempotencyStore keeps Idempotency-Key records.
type IdempotencyStore interface {
	// ClaimIdempotencyKey stores rec (Status 0) as the claim of its scope,
	// route and key, unless another record of theirs is in force: one
	// that has not expired at rec.CreatedAt and is either answered or a
	// claim made after staleBefore. Check and insert are one atomic step,
	// so of parallel claims exactly one wins. It returns nil when rec won,
	// and the record in force otherwise.
	ClaimIdempotencyKey(ctx context.Context, rec *IdempotencyRecord, staleBefore time.Time) (*IdempotencyRecord, error)
	// AnswerIdempotencyKey stores the answer to the claim rec holds;
	// ENOTFOUND when that claim is no longer there (taken over after it
	// went stale, or expired and replaced).
	AnswerIdempotencyKey(ctx context.Context, rec *IdempotencyRecord, status int, sealed []byte) error
	// ReleaseIdempotencyKey deletes the unanswered claim rec holds, so a
	// retry with the key runs again. Releasing a claim that is gone is
	// not an error.
	ReleaseIdempotencyKey(ctx context.Context, rec *IdempotencyRecord) error
}
