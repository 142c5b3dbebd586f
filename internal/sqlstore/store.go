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

// DB is a tessera.Store on a SQL database. A DB returned by InTx is bound
// to one transaction (tx); it shares everything else with its parent.
type DB struct {
	*shared
	tx runner
}

// shared is a DB's connections and caches.
type shared struct {
	// write runs statements that change state; read runs the others. They
	// are the same pool on PostgreSQL. On SQLite write has one connection,
	// owned by batch, which groups parallel writes into one commit.
	write, read *sql.DB
	batch       *batcher      // SQLite only
	checkpoints *checkpointer // SQLite only
	dialect     dialect
	// stmts caches prepared statements by pool and query text: parsing SQL
	// costs more than running these short statements.
	stmts   sync.Map // stmtKey → *sql.Stmt
	counter statementCounter

	closeOnce sync.Once
	closeErr  error
}

type stmtKey struct {
	pool  *sql.DB
	query string
}

// dialect holds what differs between the databases.
type dialect struct {
	name string
	// placeholder returns the n-th (1-based) bind parameter; nil where '?'
	// is native.
	placeholder func(n int) string
	// skipLocked is appended to the claim subquery where rows can be
	// locked, so two instances never claim the same message.
	skipLocked string
	// forUpdate locks the rows a SELECT reads until the transaction ends,
	// where rows can be locked (SQLite has one writer at a time anyway).
	forUpdate string
	// nowMS is the database's clock in Unix milliseconds, as SQL; outbox
	// leases are measured on it, so instances whose clocks disagree still
	// agree on when a lease ends. Empty means SQLite's expression.
	nowMS string
	// writingWith says a WITH clause may insert or update (PostgreSQL), so
	// statements that must commit together can be one statement.
	writingWith bool
}

// sqliteNowMS is SQLite's clock in Unix milliseconds. SQLite runs in one
// process, so this is that instance's own clock.
const sqliteNowMS = `CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)`

// dbNow is the SQL for the database's clock in Unix milliseconds.
func (db *DB) dbNow() string {
	if db.dialect.nowMS != "" {
		return db.dialect.nowMS
	}
	return sqliteNowMS
}

// Close closes the database, after the writes already queued. Closing
// twice is harmless.
func (db *DB) Close() error {
	db.closeOnce.Do(func() { db.closeErr = db.close() })
	return db.closeErr
}

func (db *DB) close() error {
	var err error
	if db.batch != nil {
		err = db.batch.close()
	}
	db.stmts.Range(func(_, st any) bool { st.(*sql.Stmt).Close(); return true })
	if db.read != db.write {
		err = errors.Join(err, db.read.Close())
	}
	if db.checkpoints != nil {
		err = errors.Join(err, db.checkpoints.close())
	}
	return errors.Join(err, db.write.Close())
}

// Ping checks the database answers.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	return db.read.QueryRowContext(ctx, "SELECT 1").Scan(&one)
}

// Dialect names the database: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.name }

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func fromNullMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromMS(v.Int64)
}

// msOrZero stores an optional time in a NOT NULL column: 0 for none.
func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return ms(t)
}

func notFound() error { return tessera.Errorf(tessera.ENOTFOUND, "Not found") }

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

// ---- verifications ----

const verificationColumns = `owner, id, method, consumer, issuer, code_hash, attempts, max_attempts, payload, created_at, expires_at, consumed_at, sealed_content, sends, last_sent_at, delivered`

type scanner interface{ Scan(dest ...any) error }

func scanVerification(row scanner) (*tessera.Verification, error) {
	var v tessera.Verification
	var method string
	var created, expires int64
	var consumed sql.NullInt64
	var lastSent int64
	var delivered int
	if err := row.Scan(&v.Owner, &v.ID, &method, &v.Consumer, &v.Issuer, &v.CodeHash, &v.Attempts, &v.MaxAttempts, &v.Payload, &created, &expires, &consumed, &v.SealedContent, &v.Sends, &lastSent, &delivered); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	v.Method, v.Delivered = tessera.Method(method), delivered == 1
	v.CreatedAt, v.ExpiresAt, v.ConsumedAt = fromMS(created), fromMS(expires), fromNullMS(consumed)
	if lastSent > 0 {
		v.LastSentAt = fromMS(lastSent)
	}
	return &v, nil
}

// CreateVerification stores v and its outbox message in one transaction.
// It undoes its own first insert if the second fails, rather than using a
// savepoint: on SQLite it shares a group commit with other requests, and
// this keeps the common path at two statements.
func (db *DB) CreateVerification(ctx context.Context, v *tessera.Verification, msg *tessera.Message) error {
	return db.putVerification(ctx, v, msg, `ON CONFLICT DO NOTHING`)
}

// ReplaceVerification is CreateVerification that overwrites an existing
// verification with the same id.
func (db *DB) ReplaceVerification(ctx context.Context, v *tessera.Verification, msg *tessera.Message) error {
	return db.putVerification(ctx, v, msg, replaceVerification)
}

// replaceVerification is the upsert clause that overwrites every column.
const replaceVerification = `ON CONFLICT (owner, id) DO UPDATE SET method = excluded.method, consumer = excluded.consumer,
		issuer = excluded.issuer, code_hash = excluded.code_hash, attempts = excluded.attempts, max_attempts = excluded.max_attempts,
		payload = excluded.payload, created_at = excluded.created_at, expires_at = excluded.expires_at, consumed_at = NULL,
		sealed_content = excluded.sealed_content, sends = excluded.sends, last_sent_at = excluded.last_sent_at`

// RenewVerification is ReplaceVerification only over a verification that
// is consumed or expired at v.CreatedAt. The condition is the WHERE of the
// upsert, checked against the row as it is when the upsert locks it (on
// SQLite, on the single writer), so parallel renewals cannot both replace
// it, and none resets the attempts of one still in use.
func (db *DB) RenewVerification(ctx context.Context, v *tessera.Verification, msg *tessera.Message) error {
	return db.putVerification(ctx, v, msg, replaceVerification+`
		WHERE verifications.consumed_at IS NOT NULL OR verifications.expires_at <= excluded.created_at`)
}

const insertVerification = `INSERT INTO verifications (` + verificationColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, 0) `

func verificationArgs(v *tessera.Verification) []any {
	return []any{v.Owner, v.ID, string(v.Method), v.Consumer, v.Issuer, v.CodeHash, v.Attempts, v.MaxAttempts, v.Payload, ms(v.CreatedAt), ms(v.ExpiresAt),
		v.SealedContent, v.Sends, msOrZero(v.LastSentAt)}
}

// insertVerificationWithMessage is putVerification in one statement, where
// a WITH clause may write (PostgreSQL): the message is inserted only if
// the verification was, and the statement is atomic by itself, so an
// initiate is one round trip instead of four (BEGIN, two inserts, COMMIT).
// The casts type the message's parameters, which a SELECT list leaves
// untyped.
var insertVerificationWithMessage = `WITH v AS (` + insertVerification + `%s RETURNING 1)
	INSERT INTO outbox (id, owner, verification_id, channel, recipient, sealed, status, attempts, next_attempt_at, locked_until, last_error, created_at, lease_holder)
	SELECT ?::TEXT, ?::TEXT, ?::TEXT, ?::TEXT, ?::TEXT, ?::BYTEA, ?::TEXT, 0, ?::BIGINT, ` + leasedUntil(postgresNowMS, "?::BIGINT") + `, '', ?::BIGINT, ?::TEXT FROM v`

func (db *DB) putVerification(ctx context.Context, v *tessera.Verification, msg *tessera.Message, onConflict string) error {
	if msg != nil && db.dialect.writingWith {
		return db.writeOp(ctx, false, func(r runner) error {
			return inUse(oneRow(r.exec(ctx, fmt.Sprintf(insertVerificationWithMessage, onConflict), append(verificationArgs(v), messageArgs(msg)...)...)))
		})
	}
	return db.writeAtomic(ctx, func(r runner) error {
		if err := inUse(oneRow(r.exec(ctx, insertVerification+onConflict, verificationArgs(v)...))); err != nil || msg == nil {
			return err
		}
		if _, err := r.exec(ctx, db.insertMessage(), messageArgs(msg)...); err != nil {
			_, undoErr := r.exec(ctx, `DELETE FROM verifications WHERE owner = ? AND id = ?`, v.Owner, v.ID)
			return errors.Join(err, undoErr)
		}
		return nil
	})
}

// inUse turns "no row written" into the conflict of an id in use.
func inUse(err error) error {
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "Verification id already in use")
	}
	return err
}

// Verification returns one verification, consumed or not.
func (db *DB) Verification(ctx context.Context, owner, id string) (*tessera.Verification, error) {
	return readVerification(ctx, db.reader(), owner, id)
}

// CheckCode reads, checks and counts or consumes. On SQLite all of it
// runs in the group commit's transaction on the single writer, so nothing
// can change in between. On PostgreSQL the UPDATE repeats the usability
// condition and matches created_at, so it changes nothing if a parallel
// request got there first (or the id was deleted and reused); then the row
// is read again to say why.
func (db *DB) CheckCode(ctx context.Context, owner string, method tessera.Method, id string, now time.Time, check func(*tessera.Verification) bool) (*tessera.Verification, bool, error) {
	var v *tessera.Verification
	var ok bool
	err := db.writeOp(ctx, false, func(r runner) error {
		var err error
		if v, err = readVerification(ctx, r, owner, id); err != nil {
			return err
		}
		if err := unusable(v, method, now); err != nil {
			return err
		}
		ok = check(v)
		query, args := countWrongCode, []any{owner, id, string(method), ms(now), ms(v.CreatedAt)}
		if ok {
			query, args = consumeCode, append([]any{ms(now)}, args...)
		}
		updated, err := scanVerification(r.queryRow(ctx, query, args...))
		if tessera.ErrorCode(err) != tessera.ENOTFOUND {
			v = updated
			return err
		}
		if v, err = readVerification(ctx, r, owner, id); err != nil {
			return err
		}
		if err := unusable(v, method, now); err != nil {
			return err
		}
		return notFound() // deleted and created again meanwhile
	})
	switch tessera.ErrorCode(err) {
	case "", tessera.EEXPIRED, tessera.ELOCKED:
		return v, ok, err
	}
	return nil, false, err
}

// CheckCodeHash is CheckCode in one statement: the UPDATE compares the
// stored hash with the code's and consumes or counts accordingly, under
// the usability condition, atomically on both databases. Only when it
// changes nothing is the row read, to say why. Comparing in SQL is not in
// constant time; it compares keyed hashes, whose bytes tell a caller who
// lacks the key nothing about a code, as token lookups by hash do.
func (db *DB) CheckCodeHash(ctx context.Context, owner string, method tessera.Method, id string, now time.Time, hashes [][]byte) (*tessera.Verification, bool, error) {
	if len(hashes) == 0 {
		return nil, false, errors.New("check code: no hash forms")
	}
	args := make([]any, 0, 3*len(hashes)+5)
	for i := range 3 {
		for _, h := range hashes {
			args = append(args, h)
		}
		if i == 0 {
			args = append(args, ms(now)) // consumed_at
		}
	}
	args = append(args, owner, id, string(method), ms(now))
	var v *tessera.Verification
	err := db.writeOp(ctx, false, func(r runner) error {
		var err error
		v, err = scanVerification(r.queryRow(ctx, checkCodeHashQuery(len(hashes)), args...))
		if tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		if v, err = readVerification(ctx, r, owner, id); err != nil {
			return err
		}
		if err := unusable(v, method, now); err != nil {
			return err
		}
		return notFound() // usable now: deleted and created again meanwhile
	})
	switch tessera.ErrorCode(err) {
	case "":
		return v, !v.ConsumedAt.IsZero(), nil
	case tessera.EEXPIRED, tessera.ELOCKED:
		return v, false, err
	}
	return nil, false, err
}

// checkCodeHashQuery is CheckCodeHash's statement for n hash forms, one
// per HMAC key configured. Rotation needs two and the first few are made
// once; an operator may keep more keys (TESSERA_HMAC_KEY sets no limit),
// whose statement is made when asked for.
func checkCodeHashQuery(n int) string {
	if n <= len(checkCodeHashQueries) {
		return checkCodeHashQueries[n-1]
	}
	return buildCheckCodeHashQuery(n)
}

var checkCodeHashQueries = func() []string {
	out := make([]string, 8)
	for i := range out {
		out[i] = buildCheckCodeHashQuery(i + 1)
	}
	return out
}()

func buildCheckCodeHashQuery(n int) string {
	in := "code_hash IN (?" + strings.Repeat(", ?", n-1) + ")"
	// consumed_at is NULL in every row the condition admits.
	return `UPDATE verifications SET consumed_at = CASE WHEN ` + in + ` THEN CAST(? AS BIGINT) ELSE NULL END,
			sealed_content = CASE WHEN ` + in + ` THEN NULL ELSE sealed_content END,
			attempts = CASE WHEN ` + in + ` THEN attempts ELSE attempts + 1 END
		WHERE ` + usableCondition + ` RETURNING ` + verificationColumns
}

// insertMessage is the INSERT of a new outbox message on each dialect. A
// message with a LeaseHolder is written leased to that worker for
// msg.Lease from the moment of the write on the database's clock, as a
// claim would lease it, so that worker sends it without claiming it.
var insertMessage = map[string]string{"sqlite": insertMessageAt(sqliteNowMS), "postgres": insertMessageAt(postgresNowMS)}

func insertMessageAt(nowMS string) string {
	return `INSERT INTO outbox (id, owner, verification_id, channel, recipient, sealed, status, attempts, next_attempt_at, locked_until, last_error, created_at, lease_holder)
	VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ` + leasedUntil(nowMS, "CAST(? AS BIGINT)") + `, '', ?, ?)`
}

// leasedUntil is the locked_until of a new message: 0 (nobody holds it)
// without a lease, else the end of the lease on the database's clock.
// lease is the SQL of the parameter, which comes twice.
func leasedUntil(nowMS, lease string) string {
	return `CASE WHEN ` + lease + ` > 0 THEN ` + nowMS + ` + ` + lease + ` ELSE 0 END`
}

func (db *DB) insertMessage() string { return insertMessage[db.dialect.name] }

func messageArgs(msg *tessera.Message) []any {
	lease := int64(0)
	if msg.LeaseHolder != "" {
		lease = max(msg.Lease.Milliseconds(), 1)
	}
	return []any{msg.ID, msg.Owner, msg.VerificationID, string(msg.Channel), msg.To, msg.Sealed, string(tessera.MessagePending),
		ms(msg.NextAttemptAt), lease, lease, ms(msg.CreatedAt), msg.LeaseHolder}
}

// usableCondition is the condition under which a code may be checked. It
// is part of the statement that counts or consumes, so the check and the
// change are one atomic step.
const usableCondition = `owner = ? AND id = ? AND method = ? AND consumed_at IS NULL AND expires_at > ? AND attempts < max_attempts`

const (
	countWrongCode = `UPDATE verifications SET attempts = attempts + 1
		WHERE ` + usableCondition + ` AND created_at = ? RETURNING ` + verificationColumns
	consumeCode = `UPDATE verifications SET consumed_at = ?, sealed_content = NULL
		WHERE ` + usableCondition + ` AND created_at = ? RETURNING ` + verificationColumns
)

func readVerification(ctx context.Context, r runner, owner, id string) (*tessera.Verification, error) {
	return scanVerification(r.queryRow(ctx, `SELECT `+verificationColumns+` FROM verifications WHERE owner = ? AND id = ?`, owner, id))
}

// unusable says why no code can be checked against v at now, if so.
func unusable(v *tessera.Verification, method tessera.Method, now time.Time) error {
	switch {
	case v.Method != method || !v.ConsumedAt.IsZero():
		return notFound()
	case v.Expired(now):
		return tessera.Errorf(tessera.EEXPIRED, "Verification expired")
	case v.Locked():
		return tessera.Errorf(tessera.ELOCKED, "Too many attempts")
	}
	return nil
}

// QueueResend counts a send and queues msg in one step; the UPDATE's
// condition holds the cooldown and the cap even under parallel requests.
func (db *DB) QueueResend(ctx context.Context, owner string, method tessera.Method, id string, now, sentBefore time.Time, maxSends int, msg *tessera.Message) (*tessera.Verification, error) {
	var v *tessera.Verification
	err := db.writeAtomic(ctx, func(r runner) error {
		var err error
		v, err = scanVerification(r.queryRow(ctx, `UPDATE verifications SET sends = sends + 1, last_sent_at = ?
			WHERE `+usableCondition+` AND last_sent_at <= ? AND sends < ? RETURNING `+verificationColumns,
			ms(now), owner, id, string(method), ms(now), ms(sentBefore), maxSends))
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			if v, err = readVerification(ctx, r, owner, id); err != nil {
				return err
			}
			if err := unusable(v, method, now); err != nil {
				return err
			}
			return tessera.Errorf(tessera.ETOOMANY, "Resent too recently or too often")
		}
		if err != nil {
			return err
		}
		_, err = r.exec(ctx, db.insertMessage(), messageArgs(msg)...)
		if err != nil {
			_, undoErr := r.exec(ctx, `UPDATE verifications SET sends = sends - 1 WHERE owner = ? AND id = ?`, owner, id)
			return errors.Join(err, undoErr)
		}
		return nil
	})
	switch tessera.ErrorCode(err) {
	case "", tessera.EEXPIRED, tessera.ELOCKED, tessera.ETOOMANY:
		return v, err
	}
	return nil, err
}

// QueueMessage queues a message that carries no code.
func (db *DB) QueueMessage(ctx context.Context, msg *tessera.Message) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, db.insertMessage(), messageArgs(msg)...)
		return err
	})
}

// DeleteVerification removes an unconsumed verification.
func (db *DB) DeleteVerification(ctx context.Context, owner string, method tessera.Method, id string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `DELETE FROM verifications WHERE owner = ? AND id = ? AND method = ? AND consumed_at IS NULL`, owner, id, string(method)))
	})
}

// ---- TOTP secrets ----

// TOTPSecret returns a consumer's secret.
func (db *DB) TOTPSecret(ctx context.Context, owner, consumer string) (*tessera.TOTPSecret, error) {
	var s tessera.TOTPSecret
	var verified sql.NullInt64
	var created int64
	err := db.reader().queryRow(ctx, `SELECT owner, consumer, sealed, verified_at, last_step, created_at FROM totp_secrets WHERE owner = ? AND consumer = ?`, owner, consumer).
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
	err := db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `INSERT INTO totp_secrets (owner, consumer, sealed, verified_at, last_step, created_at)
			VALUES (?, ?, ?, NULL, -1, ?)
			ON CONFLICT (owner, consumer) DO UPDATE SET sealed = excluded.sealed, created_at = excluded.created_at, last_step = -1
			WHERE totp_secrets.verified_at IS NULL`, s.Owner, s.Consumer, s.Sealed, ms(s.CreatedAt)))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "A verified secret exists")
	}
	return err
}

// AcceptTOTPStep moves last_step forward only: one statement, so the same
// step can win once however many requests carry it.
func (db *DB) AcceptTOTPStep(ctx context.Context, owner, consumer string, step int64, now time.Time) error {
	err := db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE totp_secrets SET last_step = ?, verified_at = COALESCE(verified_at, ?)
			WHERE owner = ? AND consumer = ? AND last_step < ?`, step, ms(now), owner, consumer, step))
	})
	if tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return err
	}
	if _, err := db.TOTPSecret(ctx, owner, consumer); err != nil {
		return err
	}
	return tessera.Errorf(tessera.ECONFLICT, "Code already used")
}

// DeleteTOTPSecret removes a consumer's secret.
func (db *DB) DeleteTOTPSecret(ctx context.Context, owner, consumer string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `DELETE FROM totp_secrets WHERE owner = ? AND consumer = ?`, owner, consumer))
	})
}

// ---- API clients ----

// CreateClient stores a client; a taken name is ECONFLICT.
func (db *DB) CreateClient(ctx context.Context, c *tessera.Client) error {
	err := db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `INSERT INTO clients (id, name, token_hash, admin, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			c.ID, c.Name, c.TokenHash, boolInt(c.Admin), ms(c.CreatedAt)))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "A client named %q exists", c.Name)
	}
	return err
}

const clientColumns = `id, name, token_hash, admin, created_at, revoked_at`

// boolInt stores a flag in an INTEGER column (0 or 1), which both
// dialects read the same way.
func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func scanClient(row scanner) (*tessera.Client, error) {
	var c tessera.Client
	var created int64
	var admin int
	var revoked sql.NullInt64
	if err := row.Scan(&c.ID, &c.Name, &c.TokenHash, &admin, &created, &revoked); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	c.CreatedAt, c.RevokedAt, c.Admin = fromMS(created), fromNullMS(revoked), admin == 1
	return &c, nil
}

// ClientByTokenHash finds an unrevoked client by its token's hash.
func (db *DB) ClientByTokenHash(ctx context.Context, hash []byte) (*tessera.Client, error) {
	return scanClient(db.reader().queryRow(ctx, `SELECT `+clientColumns+` FROM clients WHERE token_hash = ? AND revoked_at IS NULL`, hash))
}

// Clients lists every client.
func (db *DB) Clients(ctx context.Context) ([]*tessera.Client, error) {
	rows, err := db.reader().query(ctx, `SELECT `+clientColumns+` FROM clients ORDER BY created_at, name`)
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
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE clients SET revoked_at = ? WHERE (id = ? OR name = ?) AND revoked_at IS NULL`, ms(now), idOrName, idOrName))
	})
}

// ---- outbox ----

const messageColumns = `id, owner, verification_id, channel, recipient, sealed, status, attempts, next_attempt_at, last_error, created_at, sent_at,
	provider_id, delivery_status, provider_error, delivered_at, converted_at, fallback_at`

func scanMessage(row scanner) (*tessera.Message, error) {
	var m tessera.Message
	var channel, status string
	var next, created, fallbackAt int64
	var sent, delivered, converted sql.NullInt64
	var dstatus string
	if err := row.Scan(&m.ID, &m.Owner, &m.VerificationID, &channel, &m.To, &m.Sealed, &status, &m.Attempts, &next, &m.LastError, &created, &sent,
		&m.ProviderID, &dstatus, &m.ProviderError, &delivered, &converted, &fallbackAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	m.Channel, m.Status = tessera.Channel(channel), tessera.MessageStatus(status)
	m.NextAttemptAt, m.CreatedAt, m.SentAt = fromMS(next), fromMS(created), fromNullMS(sent)
	m.DeliveryStatus, m.DeliveredAt, m.ConvertedAt = tessera.DeliveryStatus(dstatus), fromNullMS(delivered), fromNullMS(converted)
	if fallbackAt > 0 {
		m.FallbackAt = fromMS(fallbackAt)
	}
	return &m, nil
}

// claimable is the condition under which a worker may claim a pending
// message at now (the caller's clock, for next_attempt_at): nobody holds it,
// or its holder's lease ran out on the database's clock.
func (db *DB) claimable() string {
	return `status = 'pending' AND next_attempt_at <= ? AND (lease_holder = '' OR locked_until <= ` + db.dbNow() + `)`
}

// ClaimMessages leases due messages of a channel in one statement. On
// PostgreSQL the subquery skips rows another instance is claiming at the
// same moment.
func (db *DB) ClaimMessages(ctx context.Context, channel tessera.Channel, holder string, now time.Time, lease time.Duration, limit int) ([]*tessera.Message, error) {
	var out []*tessera.Message
	err := db.writeOp(ctx, false, func(r runner) error {
		out = nil
		rows, err := r.query(ctx, `UPDATE outbox SET lease_holder = ?, locked_until = `+db.dbNow()+` + ?
			WHERE id IN (SELECT id FROM outbox WHERE channel = ? AND `+db.claimable()+`
				ORDER BY next_attempt_at LIMIT ? `+db.dialect.skipLocked+`)
			RETURNING `+messageColumns, holder, lease.Milliseconds(), string(channel), ms(now), limit)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanMessage(rows)
			if err != nil {
				return err
			}
			out = append(out, m)
		}
		return rows.Err()
	})
	return out, err
}

// ClaimMessage claims one message by id, as ClaimMessages would.
func (db *DB) ClaimMessage(ctx context.Context, id, holder string, now time.Time, lease time.Duration) (*tessera.Message, error) {
	var m *tessera.Message
	err := db.writeOp(ctx, false, func(r runner) error {
		var err error
		m, err = scanMessage(r.queryRow(ctx, `UPDATE outbox SET lease_holder = ?, locked_until = `+db.dbNow()+` + ?
			WHERE id = ? AND `+db.claimable()+` RETURNING `+messageColumns, holder, lease.Milliseconds(), id, ms(now)))
		return err
	})
	return m, err
}

// RenewLease extends holder's lease, only while it holds the message.
func (db *DB) RenewLease(ctx context.Context, id, holder string, lease time.Duration) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE outbox SET locked_until = `+db.dbNow()+` + ?
			WHERE id = ? AND status = 'pending' AND lease_holder = ?`, lease.Milliseconds(), id, holder))
	})
}

// MarkMessagesSent marks messages sent and erases their bodies. It need
// not be all or nothing: a message it fails to mark is simply sent again,
// which at-least-once delivery allows. It does not ask who holds the
// message: once a provider accepted it, it is sent, whoever sent it.
func (db *DB) MarkMessagesSent(ctx context.Context, ids []string, now time.Time) error {
	if len(ids) == 0 {
		return nil
	}
	return db.writeOp(ctx, false, func(r runner) error {
		for _, id := range ids {
			if _, err := r.exec(ctx, `UPDATE outbox SET status = 'sent', sealed = NULL, sent_at = ?, locked_until = 0, lease_holder = '' WHERE id = ?`, ms(now), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// RetryMessage records a failed attempt of holder and when to try again.
func (db *DB) RetryMessage(ctx context.Context, id, holder string, attempts int, next time.Time, lastErr string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?, locked_until = 0, lease_holder = ''
			WHERE id = ? AND status = 'pending' AND lease_holder = ?`,
			attempts, ms(next), lastErr, id, holder))
	})
}

// FailMessage gives a message of holder up and erases its body.
func (db *DB) FailMessage(ctx context.Context, id, holder string, attempts int, lastErr string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE outbox SET status = 'failed', sealed = NULL, attempts = ?, last_error = ?, locked_until = 0, lease_holder = ''
			WHERE id = ? AND status = 'pending' AND lease_holder = ?`,
			attempts, lastErr, id, holder))
	})
}

// MessageForVerification returns the newest message of a verification.
func (db *DB) MessageForVerification(ctx context.Context, owner, verificationID string) (*tessera.Message, error) {
	return scanMessage(db.reader().queryRow(ctx, `SELECT `+messageColumns+` FROM outbox
		WHERE owner = ? AND verification_id = ? ORDER BY created_at DESC LIMIT 1`, owner, verificationID))
}

var _ tessera.DeliveryStore = (*DB)(nil)

// SetProviderID records the provider's id of a message.
func (db *DB) SetProviderID(ctx context.Context, id, providerID string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE outbox SET provider_id = ? WHERE id = ?`, providerID, id))
	})
}

// RecordDelivery records a provider's final report on a message. A report
// may arrive before the provider id is recorded (the provider calls back
// before the sender has read its answer): it then records the id too.
func (db *DB) RecordDelivery(ctx context.Context, id, providerID string, status tessera.DeliveryStatus, providerError string, at time.Time) error {
	var delivered any // NULL unless delivered
	if status == tessera.DeliveryDelivered {
		delivered = ms(at)
	}
	// A delivery is also noted on its verification (see RecordConversion),
	// in the same commit.
	return db.writeOp(ctx, status == tessera.DeliveryDelivered, func(r runner) error {
		// A final report settles the fallback timer: delivered needs none,
		// a failure falls back at once (Engine.FallBackAfterReport).
		var owner, verificationID string
		err := r.queryRow(ctx, `UPDATE outbox SET delivery_status = ?, provider_error = ?, delivered_at = ?, fallback_at = 0,
			provider_id = CASE WHEN provider_id = '' THEN ? ELSE provider_id END
			WHERE id = ? AND (? = '' OR provider_id = '' OR provider_id = ?) AND delivery_status <> 'delivered'
			RETURNING owner, verification_id`,
			string(status), providerError, delivered, providerID, id, providerID, providerID).Scan(&owner, &verificationID)
		if errors.Is(err, sql.ErrNoRows) {
			return notFound()
		}
		if err != nil || status != tessera.DeliveryDelivered || verificationID == "" {
			return err
		}
		_, err = r.exec(ctx, `UPDATE verifications SET delivered = 1 WHERE owner = ? AND id = ? AND delivered = 0`, owner, verificationID)
		return err
	})
}

// Message returns one outbox message.
func (db *DB) Message(ctx context.Context, id string) (*tessera.Message, error) {
	return scanMessage(db.reader().queryRow(ctx, `SELECT `+messageColumns+` FROM outbox WHERE id = ?`, id))
}

// RecordConversion marks the delivered, unconverted message of a
// verification converted, in one statement, so it counts once. The engine
// asks only for a verification marked Delivered.
//
// Every validation asks, and few verifications have a delivered message
// (only some providers report delivery), so a read decides first whether
// there is anything to write: on SQLite it runs beside the single writer
// instead of taking a turn on it. The UPDATE checks again, so a
// conversion still counts once.
func (db *DB) RecordConversion(ctx context.Context, owner, verificationID string, now time.Time) (*tessera.Message, error) {
	var one int
	err := db.reader().queryRow(ctx, `SELECT 1 FROM outbox
		WHERE owner = ? AND verification_id = ? AND delivery_status = 'delivered' AND converted_at IS NULL LIMIT 1`, owner, verificationID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	var m *tessera.Message
	err = db.writeOp(ctx, false, func(r runner) error {
		var err error
		m, err = scanMessage(r.queryRow(ctx, `UPDATE outbox SET converted_at = ?
			WHERE owner = ? AND verification_id = ? AND delivery_status = 'delivered' AND converted_at IS NULL
			RETURNING `+messageColumns, ms(now), owner, verificationID))
		return err
	})
	return m, err
}

// ---- housekeeping ----

// DeleteStale removes rows nobody can use any more and that reuse detection
// does not need: spent refresh tokens stay until their session has ended.
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
		// Accounts: ended sessions and their tokens, expired flows (pending
		// registrations among them), old send counters, used recovery
		// codes. A spent refresh token stays as long as its session:
		// presenting it is reuse, which revokes the session, however long
		// after its rotation it comes back.
		{`DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < ? OR revoked_at < ?)`, []any{b, b}},
		{`DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ?`, []any{b, b}},
		{`DELETE FROM flows WHERE expires_at < ?`, []any{b}},
		{`DELETE FROM send_limits WHERE last_at < ? AND window_start < ?`, []any{b, b}},
		{`DELETE FROM recovery_codes WHERE used_at < ?`, []any{b}},
		// Idempotency keys past their 24 h, answered or not.
		{`DELETE FROM idempotency_keys WHERE expires_at < ?`, []any{b}},
	} {
		// On PostgreSQL each delete gets a transaction of its own that
		// lifts the pool's statement_timeout (a request's bound): a large
		// backlog may take longer.
		long := db.dialect.name == "postgres"
		err := db.writeOp(ctx, long, func(r runner) error {
			if long {
				if _, err := r.exec(ctx, `SET LOCAL statement_timeout = '5min'`); err != nil {
					return err
				}
			}
			res, err := r.exec(ctx, stmt.query, stmt.args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			total += n
			return err
		})
		if err != nil {
			return total, fmt.Errorf("delete stale: %w", err)
		}
	}
	// What a kept spent token no longer needs: its sealed successor (the
	// live token, encrypted for the two-tabs grace). Erased, not deleted,
	// so not counted.
	err := db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `UPDATE refresh_tokens SET successor_sealed = NULL WHERE used_at < ? AND successor_sealed IS NOT NULL`, b)
		return err
	})
	if err != nil {
		return total, fmt.Errorf("delete stale: %w", err)
	}
	return total, nil
}
