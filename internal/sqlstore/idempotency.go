package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/tessera-id/tessera"
)

var _ tessera.IdempotencyStore = (*DB)(nil)

// ClaimIdempotencyKey inserts the claim, or takes over a record that is no
// longer in force, in one upsert: its WHERE is checked against the row as
// it is when the upsert locks it (on SQLite, on the single writer), so of
// parallel claims exactly one changes a row. The others read the winner.
func (db *DB) ClaimIdempotencyKey(ctx context.Context, rec *tessera.IdempotencyRecord, staleBefore time.Time) (*tessera.IdempotencyRecord, error) {
	// A record read back may be released before it is read; then the
	// claim is tried again. Three rounds are plenty: each lost round means
	// another request held the key.
	for range 3 {
		var n int64
		err := db.writeOp(ctx, false, func(r runner) error {
			res, err := r.exec(ctx, `INSERT INTO idempotency_keys (scope, route, idem_key, request_hash, claim, status, sealed, created_at, expires_at)
				VALUES (?, ?, ?, ?, ?, 0, NULL, ?, ?)
				ON CONFLICT (scope, route, idem_key) DO UPDATE SET request_hash = excluded.request_hash, claim = excluded.claim,
					status = 0, sealed = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at
				WHERE idempotency_keys.expires_at <= excluded.created_at
					OR (idempotency_keys.status = 0 AND idempotency_keys.created_at <= ?)`,
				rec.Scope, rec.Route, rec.Key, rec.RequestHash, rec.Claim, ms(rec.CreatedAt), ms(rec.ExpiresAt), ms(staleBefore))
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, nil
		}
		held, err := db.idempotencyRecord(ctx, rec.Scope, rec.Route, rec.Key)
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			continue
		}
		return held, err
	}
	return nil, tessera.Errorf(tessera.EINPROGRESS, "A request with this Idempotency-Key is in progress")
}

func (db *DB) idempotencyRecord(ctx context.Context, scope, route, key string) (*tessera.IdempotencyRecord, error) {
	var rec tessera.IdempotencyRecord
	var created, expires int64
	// The upsert that lost has committed (or joined a commit) before this
	// read, so the read pool sees the row that won.
	err := db.reader().queryRow(ctx, `SELECT scope, route, idem_key, request_hash, claim, status, sealed, created_at, expires_at
		FROM idempotency_keys WHERE scope = ? AND route = ? AND idem_key = ?`, scope, route, key).
		Scan(&rec.Scope, &rec.Route, &rec.Key, &rec.RequestHash, &rec.Claim, &rec.Status, &rec.Sealed, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	rec.CreatedAt, rec.ExpiresAt = fromMS(created), fromMS(expires)
	return &rec, nil
}

// AnswerIdempotencyKey fills in the answer of the claim rec holds.
func (db *DB) AnswerIdempotencyKey(ctx context.Context, rec *tessera.IdempotencyRecord, status int, sealed []byte) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE idempotency_keys SET status = ?, sealed = ?
			WHERE scope = ? AND route = ? AND idem_key = ? AND claim = ? AND status = 0`,
			status, sealed, rec.Scope, rec.Route, rec.Key, rec.Claim))
	})
}

// ReleaseIdempotencyKey deletes the unanswered claim rec holds.
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, rec *tessera.IdempotencyRecord) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `DELETE FROM idempotency_keys WHERE scope = ? AND route = ? AND idem_key = ? AND claim = ? AND status = 0`,
			rec.Scope, rec.Route, rec.Key, rec.Claim)
		return err
	})
}
