package sqlstore

import (
	"context"

	"github.com/tessera-id/tessera"
)

var _ tessera.FallbackStore = (*DB)(nil)

// FailOver fails message id of holder and queues next in one transaction.
func (db *DB) FailOver(ctx context.Context, id, holder string, attempts int, lastErr string, next *tessera.Message) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE outbox SET status = 'failed', sealed = NULL, attempts = ?, last_error = ?, locked_until = 0, lease_holder = '',
			fallback_id = ? WHERE id = ? AND status = 'pending' AND lease_holder = ? AND fallback_id = ''`,
			attempts, lastErr, next.ID, id, holder)); err != nil {
			return err
		}
		_, err := r.exec(ctx, insertMessage, messageArgs(next)...)
		return err
	})
}

// FallBack marks message id as taken over by next and queues next, in one
// transaction; the mark is set once.
func (db *DB) FallBack(ctx context.Context, id string, next *tessera.Message) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE outbox SET fallback_id = ? WHERE id = ? AND fallback_id = ''`, next.ID, id)); err != nil {
			return err
		}
		_, err := r.exec(ctx, insertMessage, messageArgs(next)...)
		return err
	})
}

// MessageByID returns an outbox message.
func (db *DB) MessageByID(ctx context.Context, id string) (*tessera.Message, error) {
	return scanMessage(db.reader().queryRow(ctx, `SELECT `+messageColumns+` FROM outbox WHERE id = ?`, id))
}

// MessagesForVerification lists a verification's messages, oldest first.
func (db *DB) MessagesForVerification(ctx context.Context, owner, verificationID string) ([]*tessera.Message, error) {
	rows, err := db.reader().query(ctx, `SELECT `+messageColumns+` FROM outbox
		WHERE owner = ? AND verification_id = ? ORDER BY created_at, id`, owner, verificationID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
