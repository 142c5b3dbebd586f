// Package sqlstore implements tessera.Store on SQL databases: SQLite (pure
// Go, the zero-configuration default) and PostgreSQL (pgx, for several
// instances). Both run the same queries: times are stored as Unix
// milliseconds and placeholders are rewritten per dialect, so there is one
// copy of every rule about state, not two.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tessera-id/tessera"
)

var _ tessera.Store = (*DB)(nil)

// DB is a tessera.Store on a SQL database.
type DB struct {
	// write runs statements that change state; read runs the others. They
	// are the same pool on PostgreSQL; on SQLite write has one connection,
	// so writers queue in Go instead of spinning on SQLITE_BUSY.
	write, read *sql.DB
	dialect     dialect
	// stmts caches prepared statements by pool and query text: parsing SQL
	// costs more than running these short statements.
	stmts sync.Map // stmtKey → *sql.Stmt
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// dialect holds what differs between the databases.
type dialect struct {
	name string
	// placeholder returns the n-th (1-based) bind parameter.
	placeholder func(n int) string
	// skipLocked is appended to the claim subquery where rows can be
	// locked, so two instances never claim the same message.
	skipLocked string
}

// Close closes the database.
func (db *DB) Close() error {
	db.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	err := db.write.Close()
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	return err
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Dialect names the database: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.name }

// prepared returns the statement for query (written with '?'
// placeholders) on pool, preparing it the first time.
func (db *DB) prepared(ctx context.Context, pool *sql.DB, query string) (*sql.Stmt, error) {
	key := stmtKey{pool, query}
	if st, ok := db.stmts.Load(key); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := pool.PrepareContext(ctx, db.rebind(query))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if prev, loaded := db.stmts.LoadOrStore(key, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// exec runs a prepared statement on pool, or in tx when tx is not nil.
// Inside a transaction only statements prepared beforehand (see
// txQueries) are reused: preparing needs a connection of the pool, and on
// SQLite the transaction holds the only writer connection.
func (db *DB) exec(ctx context.Context, pool *sql.DB, tx *sql.Tx, query string, args ...any) (sql.Result, error) {
	if tx != nil {
		if st, ok := db.stmts.Load(stmtKey{pool, query}); ok {
			return tx.StmtContext(ctx, st.(*sql.Stmt)).ExecContext(ctx, args...)
		}
		return tx.ExecContext(ctx, db.rebind(query), args...)
	}
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// Statements run inside transactions, prepared when the store opens.
const (
	insertVerification = `INSERT INTO verifications (` + verificationColumns + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT DO NOTHING`
	insertMessage = `INSERT INTO outbox (id, owner, verification_id, channel, recipient, sealed, status, attempts, next_attempt_at, locked_until, last_error, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, '', ?)`
	markSent = `UPDATE outbox SET status = 'sent', sealed = NULL, sent_at = ?, locked_until = 0 WHERE id = ?`
)

var txQueries = []string{insertVerification, insertMessage, markSent}

// prepareTxQueries prepares the statements transactions use.
func (db *DB) prepareTxQueries(ctx context.Context) error {
	for _, q := range txQueries {
		if _, err := db.prepared(ctx, db.write, q); err != nil {
			return err
		}
	}
	return nil
}

// queryRow runs a prepared single-row query on pool.
func (db *DB) queryRow(ctx context.Context, pool *sql.DB, query string, args ...any) *sql.Row {
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		// Let the error surface from Scan, as QueryRow would.
		return pool.QueryRowContext(ctx, db.rebind(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query runs a prepared multi-row query on pool.
func (db *DB) query(ctx context.Context, pool *sql.DB, query string, args ...any) (*sql.Rows, error) {
	st, err := db.prepared(ctx, pool, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMilli(), Valid: true}
}

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

func lockedUntil(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return ms(t)
}

func notFound() error { return tessera.Errorf(tessera.ENOTFOUND, "Not found") }

// inTx runs fn in a write transaction and commits it if fn succeeds.
func (db *DB) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// ---- verifications ----

const verificationColumns = `owner, id, method, consumer, issuer, code_hash, attempts, max_attempts, payload, created_at, expires_at, consumed_at`

type scanner interface{ Scan(dest ...any) error }

func scanVerification(row scanner) (*tessera.Verification, error) {
	var v tessera.Verification
	var method string
	var created, expires int64
	var consumed sql.NullInt64
	if err := row.Scan(&v.Owner, &v.ID, &method, &v.Consumer, &v.Issuer, &v.CodeHash, &v.Attempts, &v.MaxAttempts, &v.Payload, &created, &expires, &consumed); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	v.Method = tessera.Method(method)
	v.CreatedAt, v.ExpiresAt, v.ConsumedAt = fromMS(created), fromMS(expires), fromNullMS(consumed)
	return &v, nil
}

// CreateVerification stores v and its outbox message in one transaction.
func (db *DB) CreateVerification(ctx context.Context, v *tessera.Verification, msg *tessera.Message) error {
	return db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := db.exec(ctx, db.write, tx, insertVerification,
			v.Owner, v.ID, string(v.Method), v.Consumer, v.Issuer, v.CodeHash, v.Attempts, v.MaxAttempts, v.Payload, ms(v.CreatedAt), ms(v.ExpiresAt))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return tessera.Errorf(tessera.ECONFLICT, "Verification id already in use")
		}
		if msg == nil {
			return nil
		}
		_, err = db.exec(ctx, db.write, tx, insertMessage,
			msg.ID, msg.Owner, msg.VerificationID, string(msg.Channel), msg.To, msg.Sealed, string(tessera.MessagePending), ms(msg.NextAttemptAt), lockedUntil(msg.LockedUntil), ms(msg.CreatedAt))
		return err
	})
}

// Verification returns one verification, consumed or not.
func (db *DB) Verification(ctx context.Context, owner, id string) (*tessera.Verification, error) {
	return scanVerification(db.queryRow(ctx, db.read, `SELECT `+verificationColumns+` FROM verifications WHERE owner = ? AND id = ?`, owner, id))
}

// usable is the condition under which a code may be checked against a
// verification. It is part of every statement that changes attempts or
// consumes, so the check and the change are one atomic step.
const usable = `owner = ? AND id = ? AND method = ? AND consumed_at IS NULL AND expires_at > ? AND attempts < max_attempts`

// FailAttempt counts a wrong code in one conditional UPDATE.
func (db *DB) FailAttempt(ctx context.Context, owner string, method tessera.Method, id string, now time.Time) (*tessera.Verification, error) {
	v, err := scanVerification(db.queryRow(ctx, db.write, `UPDATE verifications SET attempts = attempts + 1
		WHERE `+usable+` RETURNING `+verificationColumns, owner, id, string(method), ms(now)))
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return db.whyUnusable(ctx, owner, method, id, now)
	}
	return v, err
}

// ConsumeVerification marks a usable verification used in one
// conditional UPDATE.
func (db *DB) ConsumeVerification(ctx context.Context, owner string, method tessera.Method, id string, now time.Time) (*tessera.Verification, error) {
	v, err := scanVerification(db.queryRow(ctx, db.write, `UPDATE verifications SET consumed_at = ?
		WHERE `+usable+` RETURNING `+verificationColumns, ms(now), owner, id, string(method), ms(now)))
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return db.whyUnusable(ctx, owner, method, id, now)
	}
	return v, err
}

// whyUnusable says why a conditional update changed nothing.
func (db *DB) whyUnusable(ctx context.Context, owner string, method tessera.Method, id string, now time.Time) (*tessera.Verification, error) {
	v, err := scanVerification(db.queryRow(ctx, db.write, `SELECT `+verificationColumns+` FROM verifications WHERE owner = ? AND id = ?`, owner, id))
	if err != nil {
		return nil, err
	}
	switch {
	case v.Method != method || !v.ConsumedAt.IsZero():
		return nil, notFound()
	case v.Expired(now):
		return v, tessera.Errorf(tessera.EEXPIRED, "Verification expired")
	case v.Locked():
		return v, tessera.Errorf(tessera.ELOCKED, "Too many attempts")
	}
	// Only a verification deleted and created again with the same id
	// between the two statements gets here.
	return nil, tessera.Errorf(tessera.ECONFLICT, "Verification changed, try again")
}

// DeleteVerification removes an unconsumed verification.
func (db *DB) DeleteVerification(ctx context.Context, owner string, method tessera.Method, id string) error {
	res, err := db.exec(ctx, db.write, nil, `DELETE FROM verifications WHERE owner = ? AND id = ? AND method = ? AND consumed_at IS NULL`, owner, id, string(method))
	return oneRow(res, err)
}

// oneRow turns "no row changed" into ENOTFOUND.
func oneRow(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return notFound()
	}
	return nil
}

// ---- TOTP secrets ----

// TOTPSecret returns a consumer's secret.
func (db *DB) TOTPSecret(ctx context.Context, owner, consumer string) (*tessera.TOTPSecret, error) {
	var s tessera.TOTPSecret
	var verified sql.NullInt64
	var created int64
	err := db.queryRow(ctx, db.read, `SELECT owner, consumer, sealed, verified_at, last_step, created_at FROM totp_secrets WHERE owner = ? AND consumer = ?`, owner, consumer).
		Scan(&s.Owner, &s.Consumer, &s.Sealed, &verified, &s.LastStep, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	s.VerifiedAt, s.CreatedAt = fromNullMS(verified), fromMS(created)
	return &s, nil
}

// PutTemporaryTOTPSecret stores or replaces a temporary secret; the WHERE
// of the upsert keeps a verified secret untouched.
func (db *DB) PutTemporaryTOTPSecret(ctx context.Context, s *tessera.TOTPSecret) error {
	res, err := db.exec(ctx, db.write, nil, `INSERT INTO totp_secrets (owner, consumer, sealed, verified_at, last_step, created_at)
		VALUES (?, ?, ?, NULL, -1, ?)
		ON CONFLICT (owner, consumer) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at, last_step = -1
		WHERE totp_secrets.verified_at IS NULL`, s.Owner, s.Consumer, s.Sealed, ms(s.CreatedAt))
	if err := oneRow(res, err); tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "A verified secret exists")
	} else if err != nil {
		return err
	}
	return nil
}

// AcceptTOTPStep moves last_step forward only: one statement, so the same
// step can win once however many requests carry it.
func (db *DB) AcceptTOTPStep(ctx context.Context, owner, consumer string, step int64, now time.Time) error {
	res, err := db.exec(ctx, db.write, nil, `UPDATE totp_secrets SET last_step = ?, verified_at = COALESCE(verified_at, ?)
		WHERE owner = ? AND consumer = ? AND last_step < ?`, step, ms(now), owner, consumer, step)
	if err := oneRow(res, err); tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return err
	}
	if _, err := db.TOTPSecret(ctx, owner, consumer); err != nil {
		return err
	}
	return tessera.Errorf(tessera.ECONFLICT, "Code already used")
}

// DeleteTOTPSecret removes a consumer's secret.
func (db *DB) DeleteTOTPSecret(ctx context.Context, owner, consumer string) error {
	res, err := db.exec(ctx, db.write, nil, `DELETE FROM totp_secrets WHERE owner = ? AND consumer = ?`, owner, consumer)
	return oneRow(res, err)
}

// ---- API clients ----

// CreateClient stores a client; a taken name is ECONFLICT.
func (db *DB) CreateClient(ctx context.Context, c *tessera.Client) error {
	res, err := db.exec(ctx, db.write, nil, `INSERT INTO clients (id, name, token_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		c.ID, c.Name, c.TokenHash, ms(c.CreatedAt))
	if err := oneRow(res, err); tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "A client named %q exists", c.Name)
	} else if err != nil {
		return err
	}
	return nil
}

const clientColumns = `id, name, token_hash, created_at, revoked_at`

func scanClient(row scanner) (*tessera.Client, error) {
	var c tessera.Client
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&c.ID, &c.Name, &c.TokenHash, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	c.CreatedAt, c.RevokedAt = fromMS(created), fromNullMS(revoked)
	return &c, nil
}

// ClientByTokenHash finds an unrevoked client by its token's hash.
func (db *DB) ClientByTokenHash(ctx context.Context, hash []byte) (*tessera.Client, error) {
	return scanClient(db.queryRow(ctx, db.read, `SELECT `+clientColumns+` FROM clients WHERE token_hash = ? AND revoked_at IS NULL`, hash))
}

// Clients lists every client.
func (db *DB) Clients(ctx context.Context) ([]*tessera.Client, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY created_at, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// RevokeClient revokes a client by id or name.
func (db *DB) RevokeClient(ctx context.Context, idOrName string, now time.Time) error {
	res, err := db.exec(ctx, db.write, nil, `UPDATE clients SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL`, ms(now), idOrName, idOrName)
	return oneRow(res, err)
}

// ---- outbox ----

const messageColumns = `id, owner, verification_id, channel, recipient, sealed, status, attempts, next_attempt_at, last_error, created_at, sent_at`

func scanMessage(row scanner) (*tessera.Message, error) {
	var m tessera.Message
	var channel, status string
	var next, created int64
	var sent sql.NullInt64
	if err := row.Scan(&m.ID, &m.Owner, &m.VerificationID, &channel, &m.To, &m.Sealed, &status, &m.Attempts, &next, &m.LastError, &created, &sent); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	m.Channel, m.Status = tessera.Channel(channel), tessera.MessageStatus(status)
	m.NextAttemptAt, m.CreatedAt, m.SentAt = fromMS(next), fromMS(created), fromNullMS(sent)
	return &m, nil
}

// ClaimMessages leases due messages in one statement. On PostgreSQL the
// subquery skips rows another instance is claiming at the same moment.
func (db *DB) ClaimMessages(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]*tessera.Message, error) {
	rows, err := db.query(ctx, db.write, `UPDATE outbox SET locked_until = ?
		WHERE id IN (SELECT id FROM outbox WHERE status = 'pending' AND next_attempt_at <= ? AND locked_until <= ?
			ORDER BY next_attempt_at LIMIT ? `+db.dialect.skipLocked+`)
		RETURNING `+messageColumns, ms(now.Add(lease)), ms(now), ms(now), limit)
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

// MarkMessagesSent marks messages sent and erases their bodies, in one
// transaction.
func (db *DB) MarkMessagesSent(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return db.inTx(ctx, func(tx *sql.Tx) error {
		for _, id := range ids {
			if _, err := db.exec(ctx, db.write, tx, markSent, ms(now), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// rebind rewrites a query written with '?' placeholders for the dialect.
func (db *DB) rebind(query string) string {
	if db.dialect.placeholder == nil {
		return query // '?' is native
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString(db.dialect.placeholder(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// RetryMessage records a failed attempt and when to try again.
func (db *DB) RetryMessage(ctx context.Context, id string, attempts int, next time.Time, lastErr string) error {
	res, err := db.exec(ctx, db.write, nil, `UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, locked_until = 0 WHERE id = ? AND status = 'pending'`,
		attempts, ms(next), lastErr, id)
	return oneRow(res, err)
}

// FailMessage gives a message up and erases its body.
func (db *DB) FailMessage(ctx context.Context, id string, attempts int, lastErr string) error {
	res, err := db.exec(ctx, db.write, nil, `UPDATE outbox SET status = 'failed', sealed = NULL, attempts = ?, last_error = ?, locked_until = 0 WHERE id = ? AND status = 'pending'`,
		attempts, lastErr, id)
	return oneRow(res, err)
}

// MessageForVerification returns the newest message of a verification.
func (db *DB) MessageForVerification(ctx context.Context, owner, verificationID string) (*tessera.Message, error) {
	return scanMessage(db.queryRow(ctx, db.read, `SELECT `+messageColumns+` FROM outbox
		WHERE owner = ? AND verification_id = ? ORDER BY created_at DESC LIMIT 1`, owner, verificationID))
}

// ---- housekeeping ----

// DeleteStale removes rows nobody can use any more.
func (db *DB) DeleteStale(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	b := ms(before)
	for _, stmt := range []struct {
		query string
		args  []any
	}{
		{`DELETE FROM verifications WHERE expires_at < ? OR consumed_at < ?`, []any{b, b}},
		{`DELETE FROM outbox WHERE status <> 'pending' AND created_at < ?`, []any{b}},
		{`DELETE FROM totp_secrets WHERE verified_at IS NULL AND created_at < ?`, []any{b}},
	} {
		res, err := db.exec(ctx, db.write, nil, stmt.query, stmt.args...)
		if err != nil {
			return total, fmt.Errorf("delete stale: %w", err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}
