package sqlstore

import (
	"context"
	"time"

	"github.com/tessera-id/tessera"
)

var (
	_ tessera.FallbackStore      = (*DB)(nil)
	_ tessera.TimedFallbackStore = (*DB)(nil)
)

// FailOver fails message id of holder and queues next in one transaction.
func (db *DB) FailOver(ctx context.Context, id, holder string, attempts int, lastErr string, next *tessera.Message) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE outbox SET status = 'failed', sealed = NULL, attempts = ?, last_error = ?, locked_until = 0, lease_holder = '',
			fallback_id = ?, fallback_at = 0 WHERE id = ? AND status = 'pending' AND lease_holder = ? AND fallback_id = ''`,
			attempts, lastErr, next.ID, id, holder)); err != nil {
			return err
		}
		_, err := r.exec(ctx, db.insertMessage(), messageArgs(next)...)
		return err
	})
}

// FallBack marks message id as taken over by next and queues next, in one
// transaction; the mark is set once.
func (db *DB) FallBack(ctx context.Context, id string, next *tessera.Message) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE outbox SET fallback_id = ?, fallback_at = 0 WHERE id = ? AND fallback_id = ''`, next.ID, id)); err != nil {
			return err
		}
		_, err := r.exec(ctx, db.insertMessage(), messageArgs(next)...)
		return err
	})
}

// fallbackDue is the condition under which a sent message falls back on
// its timer at now: its time is past, no provider reported on it, and
// nothing took over from it yet.
const fallbackDue = `fallback_at > 0 AND fallback_at <= ? AND status = 'sent' AND delivery_status = '' AND fallback_id = ''`

// MarkSentFallBackAt marks message id sent and starts its fallback timer.
func (db *DB) MarkSentFallBackAt(ctx context.Context, id string, sentAt, fallbackAt time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `UPDATE outbox SET status = 'sent', sealed = NULL, sent_at = ?, locked_until = 0, lease_holder = '', fallback_at = ?
			WHERE id = ?`, ms(sentAt), ms(fallbackAt), id)
		return err
	})
}

// FallbacksDue lists the messages whose fallback timer ran out at now.
func (db *DB) FallbacksDue(ctx context.Context, now time.Time, limit int) ([]*tessera.Message, error) {
	return db.queryMessages(ctx, `SELECT `+messageColumns+` FROM outbox WHERE `+fallbackDue+` ORDER BY fallback_at LIMIT ?`, ms(now), limit)
}

// queryMessages runs a query of messageColumns on the read pool.
func (db *DB) queryMessages(ctx context.Context, query string, args ...any) ([]*tessera.Message, error) {
	rows, err := db.reader().query(ctx, query, args...)
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

// FallBackUndelivered marks message id, due on its timer, as taken over by
// next, with note, and queues next, in one transaction: of two instances
// that found it due at once, one queues next.
func (db *DB) FallBackUndelivered(ctx context.Context, id string, now time.Time, note string, next *tessera.Message) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE outbox SET fallback_id = ?, fallback_at = 0, last_error = ? WHERE id = ? AND `+fallbackDue,
			next.ID, note, id, ms(now))); err != nil {
			return err
		}
		_, err := r.exec(ctx, db.insertMessage(), messageArgs(next)...)
		return err
	})
}

// StopFallback takes message id off its fallback timer.
func (db *DB) StopFallback(ctx context.Context, id string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `UPDATE outbox SET fallback_at = 0 WHERE id = ?`, id)
		return err
	})
}

// MessageByID returns an outbox message.
func (db *DB) MessageByID(ctx context.Context, id string) (*tessera.Message, error) {
	return scanMessage(db.reader().queryRow(ctx, `SELECT `+messageColumns+` FROM outbox WHERE id = ?`, id))
}

// MessagesForVerification lists a verification's messages, oldest first.
func (db *DB) MessagesForVerification(ctx context.Context, owner, verificationID string) ([]*tessera.Message, error) {
	return db.queryMessages(ctx, `SELECT `+messageColumns+` FROM outbox
		WHERE owner = ? AND verification_id = ? ORDER BY created_at, id`, owner, verificationID)
}
