package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera"
)

var _ tessera.AccountStore = (*DB)(nil)

// userSelect reads a user in one query: the account row and, joined on
// the (user_id, kind) index of credentials, its email, password, phone and
// authenticator-app credentials. User's factor fields are a view of those
// rows; users itself holds none of them.
const userSelect = `SELECT u.id, COALESCE(e.identifier, ''), e.verified_at, COALESCE(p.identifier, ''), COALESCE(p.country, ''), p.verified_at,
	COALESCE(pw.secret, ''), pw.created_at, u.status, t.verified_at, u.last_login_at, u.last_login_device, u.failed_logins, u.locked_until,
	u.created_at, p.second_factor_at, u.anti_phishing_sealed, COALESCE(pw.identifier, ''), pk.verified_at, pk.second_factor_at, u.locale
	FROM users u
	LEFT JOIN credentials e ON e.user_id = u.id AND e.kind = 'email'
	LEFT JOIN credentials pw ON pw.user_id = u.id AND pw.kind = 'password'
	LEFT JOIN credentials p ON p.user_id = u.id AND p.kind = 'phone'
	LEFT JOIN credentials t ON t.user_id = u.id AND t.kind = 'totp'
	LEFT JOIN credentials pk ON pk.user_id = u.id AND pk.kind = 'passkeys'`

func scanUser(row scanner) (*tessera.User, error) {
	var u tessera.User
	var emailVerified, phoneVerified, pwChanged, totpVerified, lastLogin, smsMFA, passkeys, passkeyUsable sql.NullInt64
	var locked, created int64
	var status string
	err := row.Scan(&u.ID, &u.Email, &emailVerified, &u.Phone, &u.PhoneCountry, &phoneVerified, &u.PasswordHash, &pwChanged,
		&status, &totpVerified, &lastLogin, &u.LastLoginDevice, &u.FailedLogins, &locked, &created, &smsMFA, &u.AntiPhishingSealed, &u.PasswordRecoveredVia, &passkeys, &passkeyUsable, &u.Locale)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	u.Status = tessera.UserStatus(status)
	u.EmailVerifiedAt, u.PhoneVerifiedAt, u.TOTPVerifiedAt, u.LastLoginAt = fromNullMS(emailVerified), fromNullMS(phoneVerified), fromNullMS(totpVerified), fromNullMS(lastLogin)
	u.PasswordChanged, u.CreatedAt, u.SMSMFAAt, u.PasskeysAt = fromNullMS(pwChanged), fromMS(created), fromNullMS(smsMFA), fromNullMS(passkeys)
	u.PasskeyUsable = passkeyUsable.Valid
	if locked > 0 {
		u.LockedUntil = fromMS(locked)
	}
	return &u, nil
}

func nullMS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(t), Valid: true}
}

// credentialInsert starts every INSERT of a credential row.
const credentialInsert = `INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at, second_factor_at, created_at, last_used_at) `

// userExists is ENOTFOUND unless the user exists: for the methods whose
// statement changes nothing both when the user is unknown and when there
// is nothing to change.
func userExists(ctx context.Context, r runner, userID string) error {
	var one int
	err := r.queryRow(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound()
	}
	return err
}

// CreateUser stores a user and its credentials; a taken email is ECONFLICT.
func (db *DB) CreateUser(ctx context.Context, u *tessera.User) error {
	err := db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `INSERT INTO users (id, status, last_login_at, last_login_device, failed_logins, locked_until, created_at, anti_phishing_sealed, locale)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			u.ID, string(u.Status), nullMS(u.LastLoginAt), u.LastLoginDevice, u.FailedLogins, msOrZero(u.LockedUntil), ms(u.CreatedAt),
			u.AntiPhishingSealed, u.Locale)); err != nil {
			return err
		}
		// The address is unique among email credentials: a taken one
		// inserts nothing, and the account row goes again (here, not by
		// a rollback, so the method leaves no trace inside InTx either).
		err := oneRow(r.exec(ctx, credentialInsert+`VALUES (?, 'email', ?, ?, '', '', ?, NULL, ?, NULL) ON CONFLICT DO NOTHING`,
			u.ID, u.Email, strings.ToLower(u.Email), nullMS(u.EmailVerifiedAt), ms(u.CreatedAt)))
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			if _, err := r.exec(ctx, `DELETE FROM users WHERE id = ?`, u.ID); err != nil {
				return err
			}
			return notFound()
		}
		if err != nil {
			return err
		}
		if u.PasswordHash != "" {
			if _, err := r.exec(ctx, credentialInsert+`VALUES (?, 'password', '', '', '', ?, ?, NULL, ?, NULL)`,
				u.ID, u.PasswordHash, ms(u.PasswordChanged), ms(u.PasswordChanged)); err != nil {
				return err
			}
		}
		if u.Phone != "" {
			if _, err := r.exec(ctx, credentialInsert+`VALUES (?, 'phone', ?, '', ?, '', ?, ?, ?, NULL)`,
				u.ID, u.Phone, u.PhoneCountry, nullMS(u.PhoneVerifiedAt), nullMS(u.SMSMFAAt), ms(u.CreatedAt)); err != nil {
				return err
			}
		}
		if !u.TOTPVerifiedAt.IsZero() {
			if _, err := r.exec(ctx, credentialInsert+`VALUES (?, 'totp', '', '', '', '', ?, ?, ?, NULL)`,
				u.ID, ms(u.TOTPVerifiedAt), ms(u.TOTPVerifiedAt), ms(u.TOTPVerifiedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "Email already registered")
	}
	return err
}

// User returns a user by id.
func (db *DB) User(ctx context.Context, id string) (*tessera.User, error) {
	return scanUser(db.reader().queryRow(ctx, userSelect+` WHERE u.id = ?`, id))
}

// UserByEmail returns a user by email, case-insensitively: the partial
// unique index on email credentials finds the id.
func (db *DB) UserByEmail(ctx context.Context, email string) (*tessera.User, error) {
	return scanUser(db.reader().queryRow(ctx, userSelect+` WHERE u.id = (SELECT user_id FROM credentials WHERE kind = 'email' AND identifier_key = ?)`,
		strings.ToLower(email)))
}

// ReserveLogin counts an attempt in the same step that checks the lock, so
// parallel attempts cannot slip past it.
func (db *DB) ReserveLogin(ctx context.Context, userID string, now time.Time, lockFor func(failures int) time.Duration) (*tessera.User, error) {
	// The count is a compare-and-swap on failed_logins; on PostgreSQL a
	// parallel attempt can win the swap, and then this one tries again.
	for {
		u, err := db.reserveLogin(ctx, userID, now, lockFor)
		if tessera.ErrorCode(err) != tessera.ECONFLICT || ctx.Err() != nil {
			return u, err
		}
	}
}

func (db *DB) reserveLogin(ctx context.Context, userID string, now time.Time, lockFor func(failures int) time.Duration) (*tessera.User, error) {
	var u *tessera.User
	err := db.writeOp(ctx, false, func(r runner) error {
		var err error
		if u, err = scanUser(r.queryRow(ctx, userSelect+` WHERE u.id = ?`, userID)); err != nil {
			return err
		}
		if now.Before(u.LockedUntil) {
			return tessera.Errorf(tessera.ELOCKED, "Too many failed logins")
		}
		// The attempt counts as a failure until LoginSucceeded clears it;
		// the lock it would earn is set now, before the password is checked.
		failures := u.FailedLogins + 1
		lockUntil := int64(0)
		if d := lockFor(failures); d > 0 {
			lockUntil = ms(now.Add(d))
		}
		res, err := r.exec(ctx, `UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ? AND failed_logins = ?`,
			failures, lockUntil, userID, u.FailedLogins)
		if err := oneRow(res, err); err != nil {
			return tessera.Errorf(tessera.ECONFLICT, "Parallel login, try again")
		}
		return nil
	})
	return u, err
}

// ClearLoginFailures forgets failures after a right password.
func (db *DB) ClearLoginFailures(ctx context.Context, userID string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?`, userID))
	})
}

// LoginSucceeded clears failures and records the login.
func (db *DB) LoginSucceeded(ctx context.Context, userID string, now time.Time, device string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0, last_login_at = ?, last_login_device = ? WHERE id = ?`,
			ms(now), device, userID))
	})
}

// SetEmailVerified confirms the email if it is still the user's.
func (db *DB) SetEmailVerified(ctx context.Context, userID, email string, now time.Time) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE credentials SET verified_at = COALESCE(verified_at, ?)
			WHERE user_id = ? AND kind = 'email' AND identifier_key = ?`, ms(now), userID, strings.ToLower(email))); err != nil {
			return err
		}
		_, err := r.exec(ctx, `UPDATE users SET status = 'active' WHERE id = ? AND status = 'unverified'`, userID)
		return err
	})
}

// SetPhone sets an unverified phone unless a verified one is set. The
// interface gives no time: the row's created_at is the clock's.
func (db *DB) SetPhone(ctx context.Context, userID, phone, country string) error {
	err := db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, credentialInsert+`SELECT id, 'phone', ?, '', ?, '', NULL, NULL, ?, NULL FROM users WHERE id = ?
			ON CONFLICT (user_id, kind) DO UPDATE SET identifier = excluded.identifier, country = excluded.country,
				second_factor_at = NULL, created_at = excluded.created_at, last_used_at = NULL
			WHERE credentials.verified_at IS NULL`, phone, country, ms(time.Now()), userID))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		if _, err := db.User(ctx, userID); err != nil {
			return err
		}
		return tessera.Errorf(tessera.ECONFLICT, "A verified phone is set; change it with the user key flows")
	}
	return err
}

// SetPhoneVerified verifies the phone if it is still the user's, and makes
// it a second factor.
func (db *DB) SetPhoneVerified(ctx context.Context, userID, phone string, now time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE credentials SET verified_at = COALESCE(verified_at, ?), second_factor_at = COALESCE(second_factor_at, ?)
			WHERE user_id = ? AND kind = 'phone' AND identifier = ? AND identifier <> ''`, ms(now), ms(now), userID, phone))
	})
}

// SetSMSMFA turns the verified phone's part as a second factor on or off.
func (db *DB) SetSMSMFA(ctx context.Context, userID string, at time.Time) error {
	if !at.IsZero() {
		return db.writeOp(ctx, false, func(r runner) error {
			return oneRow(r.exec(ctx, `UPDATE credentials SET second_factor_at = ? WHERE user_id = ? AND kind = 'phone' AND verified_at IS NOT NULL`,
				ms(at), userID))
		})
	}
	return db.writeOp(ctx, true, func(r runner) error {
		res, err := r.exec(ctx, `UPDATE credentials SET second_factor_at = NULL WHERE user_id = ? AND kind = 'phone'`, userID)
		if err := oneRow(res, err); tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		return userExists(ctx, r, userID) // no phone: nothing to turn off
	})
}

// ChangeEmail replaces the email credential with a verified one, unless
// another account's email credential has the address.
func (db *DB) ChangeEmail(ctx context.Context, userID, newEmail string, now time.Time) error {
	key := strings.ToLower(newEmail)
	err := db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE credentials SET identifier = ?, identifier_key = ?, verified_at = ?, created_at = ?, last_used_at = NULL
			WHERE user_id = ? AND kind = 'email'
				AND NOT EXISTS (SELECT 1 FROM credentials other WHERE other.kind = 'email' AND other.identifier_key = ? AND other.user_id <> ?)`,
			newEmail, key, ms(now), ms(now), userID, key, userID)); err != nil {
			return err
		}
		_, err := r.exec(ctx, `UPDATE users SET status = 'active' WHERE id = ? AND status = 'unverified'`, userID)
		return err
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		if _, err := db.User(ctx, userID); err != nil {
			return err
		}
		return tessera.Errorf(tessera.ECONFLICT, "Another account uses that email")
	}
	// Two accounts taking one address at once on PostgreSQL: the unique
	// index on email credentials stops the second.
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "unique") {
		return tessera.Errorf(tessera.ECONFLICT, "Another account uses that email")
	}
	return err
}

// ChangePhone replaces the phone with a verified one; whether texted codes
// are a second factor stays as it was.
func (db *DB) ChangePhone(ctx context.Context, userID, phone, country string, now time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, credentialInsert+`SELECT id, 'phone', ?, '', ?, '', ?, NULL, ?, NULL FROM users WHERE id = ?
			ON CONFLICT (user_id, kind) DO UPDATE SET identifier = excluded.identifier, country = excluded.country,
				verified_at = excluded.verified_at, created_at = excluded.created_at, last_used_at = NULL`,
			phone, country, ms(now), ms(now), userID))
	})
}

// RemovePhone removes the phone credential, and with it SMS as a second
// factor.
func (db *DB) RemovePhone(ctx context.Context, userID string) error {
	return db.writeOp(ctx, true, func(r runner) error {
		res, err := r.exec(ctx, `DELETE FROM credentials WHERE user_id = ? AND kind = 'phone'`, userID)
		if err := oneRow(res, err); tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		return userExists(ctx, r, userID)
	})
}

// SetAntiPhishing stores the sealed anti-phishing code, adding or replacing.
func (db *DB) SetAntiPhishing(ctx context.Context, userID string, sealed []byte, replace bool) error {
	cond := `anti_phishing_sealed IS NULL`
	if replace {
		cond = `anti_phishing_sealed IS NOT NULL`
	}
	err := db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE users SET anti_phishing_sealed = ? WHERE id = ? AND `+cond, sealed, userID))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		if _, err := db.User(ctx, userID); err != nil {
			return err
		}
		if replace {
			return tessera.Errorf(tessera.ECONFLICT, "No anti-phishing code is set: add one")
		}
		return tessera.Errorf(tessera.ECONFLICT, "An anti-phishing code is set already: change it")
	}
	return err
}

// HitSendLimit counts a send in one conditional upsert, so parallel
// requests and several instances share the count.
func (db *DB) HitSendLimit(ctx context.Context, key string, now time.Time, cooldown, window time.Duration, max int) error {
	err := db.writeOp(ctx, false, func(r runner) error {
		n, w := ms(now), ms(now.Add(-window))
		return oneRow(r.exec(ctx, `INSERT INTO send_limits (key, window_start, count, last_at) VALUES (?, ?, 1, ?)
			ON CONFLICT (key) DO UPDATE SET
				count = CASE WHEN send_limits.window_start <= ? THEN 1 ELSE send_limits.count + 1 END,
				window_start = CASE WHEN send_limits.window_start <= ? THEN ? ELSE send_limits.window_start END,
				last_at = ?
			WHERE send_limits.last_at <= ? AND (send_limits.window_start <= ? OR send_limits.count < ?)`,
			key, n, n, w, w, n, n, ms(now.Add(-cooldown)), w, max))
	})
	if tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return err
	}
	var start, last int64
	var count int
	if err := db.reader().queryRow(ctx, `SELECT window_start, count, last_at FROM send_limits WHERE key = ?`, key).Scan(&start, &count, &last); err != nil {
		return err
	}
	wait := fromMS(last).Add(cooldown).Sub(now)
	if count >= max {
		if untilWindow := fromMS(start).Add(window).Sub(now); untilWindow > wait {
			wait = untilWindow
		}
	}
	return &tessera.Error{Code: tessera.ETOOMANY, Message: "Too many codes sent: wait before asking again", RetryAfter: int((wait + time.Second - 1) / time.Second)}
}

// SetTOTPVerified records an authenticator-app credential, or removes it.
func (db *DB) SetTOTPVerified(ctx context.Context, userID string, at time.Time) error {
	if !at.IsZero() {
		return db.writeOp(ctx, false, func(r runner) error {
			return oneRow(r.exec(ctx, credentialInsert+`SELECT id, 'totp', '', '', '', '', ?, ?, ?, NULL FROM users WHERE id = ?
				ON CONFLICT (user_id, kind) DO UPDATE SET verified_at = excluded.verified_at, second_factor_at = excluded.second_factor_at,
					created_at = excluded.created_at, last_used_at = NULL`, ms(at), ms(at), ms(at), userID))
		})
	}
	return db.writeOp(ctx, true, func(r runner) error {
		res, err := r.exec(ctx, `DELETE FROM credentials WHERE user_id = ? AND kind = 'totp'`, userID)
		if err := oneRow(res, err); tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		return userExists(ctx, r, userID)
	})
}

// SetPassword replaces the password credential, and forgets the failed
// logins and the lock.
func (db *DB) SetPassword(ctx context.Context, userID, hash, recoveredVia string, now time.Time) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE users SET failed_logins = 0, locked_until = 0 WHERE id = ?`, userID)); err != nil {
			return err
		}
		// A password's identifier is the channel of the recovery that set it.
		_, err := r.exec(ctx, credentialInsert+`VALUES (?, 'password', ?, '', '', ?, ?, NULL, ?, NULL)
			ON CONFLICT (user_id, kind) DO UPDATE SET identifier = excluded.identifier, secret = excluded.secret, verified_at = excluded.verified_at,
				created_at = excluded.created_at, last_used_at = NULL`, userID, recoveredVia, hash, ms(now), ms(now))
		return err
	})
}

// SetLocale sets the language of the user's messages (empty for none).
func (db *DB) SetLocale(ctx context.Context, userID, locale string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE users SET locale = ? WHERE id = ?`, locale, userID))
	})
}

// SetUserStatus sets the status.
func (db *DB) SetUserStatus(ctx context.Context, userID string, status tessera.UserStatus) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE users SET status = ? WHERE id = ?`, string(status), userID))
	})
}

// Credentials lists a user's credentials, oldest first.
func (db *DB) Credentials(ctx context.Context, userID string) ([]*tessera.Credential, error) {
	rows, err := db.reader().query(ctx, `SELECT id, user_id, kind, identifier, verified_at, second_factor_at, created_at, last_used_at
		FROM credentials WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.Credential
	for rows.Next() {
		var c tessera.Credential
		var id, created int64
		var kind string
		var verified, factor, used sql.NullInt64
		if err := rows.Scan(&id, &c.UserID, &kind, &c.Identifier, &verified, &factor, &created, &used); err != nil {
			return nil, err
		}
		c.ID, c.Kind, c.SecondFactor = strconv.FormatInt(id, 10), tessera.CredentialKind(kind), factor.Valid
		c.VerifiedAt, c.CreatedAt, c.LastUsedAt = fromNullMS(verified), fromMS(created), fromNullMS(used)
		out = append(out, &c)
	}
	return out, rows.Err()
}

// ---- passkeys ----

// Passkeys returns the user's passkeys from their credential row.
func (db *DB) Passkeys(ctx context.Context, userID string) ([]*tessera.Passkey, error) {
	var data string
	err := db.reader().queryRow(ctx, `SELECT data FROM credentials WHERE user_id = ? AND kind = 'passkeys'`, userID).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*tessera.Passkey
	return out, json.Unmarshal([]byte(data), &out)
}

// SavePasskeys rewrites the user's passkeys if the row still holds prev:
// one conditional statement, so two parallel changes (or two logins
// moving the sign counter) cannot both win. The row is a second factor
// while one passkey is usable (not marked as cloned). A removal never
// leaves an account with neither a password nor a usable passkey: the
// user's row is locked first, so a parallel RemovePassword waits and then
// sees this.
func (db *DB) SavePasskeys(ctx context.Context, userID string, prev, next []*tessera.Passkey, now time.Time) error {
	before, err := passkeysJSON(prev)
	if err != nil {
		return err
	}
	after, err := passkeysJSON(next)
	if err != nil {
		return err
	}
	usable := slices.ContainsFunc(next, func(p *tessera.Passkey) bool { return !p.CloneWarning })
	err = db.writeOp(ctx, true, func(r runner) error {
		if err := db.lockUser(ctx, r, userID); err != nil {
			return err
		}
		if !usable && len(next) < len(prev) { // a removal (a clone warning removes nothing)
			var password int
			if err := r.queryRow(ctx, `SELECT COUNT(*) FROM credentials WHERE user_id = ? AND kind = 'password'`, userID).Scan(&password); err != nil {
				return err
			}
			if password == 0 {
				return tessera.Errorf(tessera.ECONFLICT, "This is the last way the account logs in: add another passkey (or a password) first")
			}
		}
		factorAt := nullMS(now)
		switch {
		case len(prev) == 0 && len(next) == 0:
			return nil
		case len(prev) == 0:
			// Passkeys are a second factor from the first one on.
			return oneRow(r.exec(ctx, `INSERT INTO credentials (user_id, kind, identifier, identifier_key, country, secret, verified_at,
				second_factor_at, created_at, last_used_at, data) VALUES (?, 'passkeys', '', '', '', '', ?, ?, ?, NULL, ?) ON CONFLICT DO NOTHING`,
				userID, ms(now), factorAt, ms(now), after))
		case len(next) == 0:
			return oneRow(r.exec(ctx, `DELETE FROM credentials WHERE user_id = ? AND kind = 'passkeys' AND data = ?`, userID, before))
		}
		if !usable {
			factorAt = sql.NullInt64{}
		}
		return oneRow(r.exec(ctx, `UPDATE credentials SET data = ?, last_used_at = ?,
			second_factor_at = CASE WHEN ? THEN COALESCE(second_factor_at, ?) ELSE NULL END
			WHERE user_id = ? AND kind = 'passkeys' AND data = ?`,
			after, nullMS(lastUse(next)), usable, factorAt, userID, before))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.ECONFLICT, "The passkeys changed meanwhile: try again")
	}
	return err
}

// lockUser locks the user's row for the rest of the transaction (on
// PostgreSQL; SQLite writes one at a time), so that changes that each
// check another credential cannot both pass on stale reads.
func (db *DB) lockUser(ctx context.Context, r runner, userID string) error {
	var id string
	err := r.queryRow(ctx, `SELECT id FROM users WHERE id = ? `+db.dialect.forUpdate, userID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound()
	}
	return err
}

func passkeysJSON(list []*tessera.Passkey) (string, error) {
	if len(list) == 0 {
		return "", nil
	}
	b, err := json.Marshal(list)
	return string(b), err
}

func lastUse(list []*tessera.Passkey) time.Time {
	var last time.Time
	for _, p := range list {
		if p.LastUsedAt.After(last) {
			last = p.LastUsedAt
		}
	}
	return last
}

// RemovePassword removes the password credential, only while a usable
// passkey remains (ECONFLICT otherwise), under the user's row lock (see
// SavePasskeys).
func (db *DB) RemovePassword(ctx context.Context, userID string) error {
	noUser := false
	err := db.writeOp(ctx, true, func(r runner) error {
		if err := db.lockUser(ctx, r, userID); err != nil {
			noUser = tessera.ErrorCode(err) == tessera.ENOTFOUND
			return err
		}
		return oneRow(r.exec(ctx, `DELETE FROM credentials WHERE user_id = ? AND kind = 'password'
			AND EXISTS (SELECT 1 FROM credentials p WHERE p.user_id = ? AND p.kind = 'passkeys' AND p.second_factor_at IS NOT NULL)`, userID, userID))
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND && !noUser {
		return tessera.Errorf(tessera.ECONFLICT, "The password is the only way the account logs in, or there is none: add a passkey first")
	}
	return err
}

// ---- sessions and refresh tokens ----

const sessionColumns = `id, user_id, amr, user_agent, ip, created_at, last_used_at, expires_at, revoked_at, revoke_reason, aal, auth_time`

func scanSession(row scanner) (*tessera.Session, error) {
	var s tessera.Session
	var amr string
	var created, used, expires, authTime int64
	var revoked sql.NullInt64
	err := row.Scan(&s.ID, &s.UserID, &amr, &s.UserAgent, &s.IP, &created, &used, &expires, &revoked, &s.RevokeReason, &s.AAL, &authTime)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	if amr != "" {
		s.AMR = strings.Split(amr, ",")
	}
	s.CreatedAt, s.LastUsedAt, s.ExpiresAt, s.RevokedAt, s.AuthTime = fromMS(created), fromMS(used), fromMS(expires), fromNullMS(revoked), fromMS(authTime)
	return &s, nil
}

// CreateSession stores a session and its first refresh token together,
// unless the user is disabled (EFORBIDDEN). The user's row is locked
// first: a login that checked the account before an operator disabled it
// either commits before the disabling (whose revocation then ends the
// session) or sees it, and never leaves a session that enabling the
// account would bring back.
func (db *DB) CreateSession(ctx context.Context, s *tessera.Session, first *tessera.RefreshToken) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := db.lockUser(ctx, r, s.UserID); err != nil {
			return err
		}
		var status string
		if err := r.queryRow(ctx, `SELECT status FROM users WHERE id = ?`, s.UserID).Scan(&status); err != nil {
			return err
		}
		if tessera.UserStatus(status) == tessera.UserDisabled {
			return tessera.Errorf(tessera.EFORBIDDEN, "This account is disabled")
		}
		if _, err := r.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, '', ?, ?)`,
			s.ID, s.UserID, strings.Join(s.AMR, ","), s.UserAgent, s.IP, ms(s.CreatedAt), ms(s.LastUsedAt), ms(s.ExpiresAt), s.AAL, ms(s.AuthTime)); err != nil {
			return err
		}
		_, err := r.exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, used_at, successor_sealed) VALUES (?, ?, ?, NULL, NULL)`,
			first.Hash, s.ID, ms(first.CreatedAt))
		return err
	})
}

// Session returns a session.
func (db *DB) Session(ctx context.Context, id string) (*tessera.Session, error) {
	return scanSession(db.reader().queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id))
}

// Sessions lists a user's active sessions, newest first.
func (db *DB) Sessions(ctx context.Context, userID string, now time.Time) ([]*tessera.Session, error) {
	rows, err := db.reader().query(ctx, `SELECT `+sessionColumns+` FROM sessions
		WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id`, userID, ms(now))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.Session
	for rows.Next() {
		s, err := scanSession(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// SetSessionAuth records a step-up on an active session.
func (db *DB) SetSessionAuth(ctx context.Context, sessionID string, aal int, amr []string, authTime, now time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE sessions SET aal = ?, amr = ?, auth_time = ? WHERE id = ? AND revoked_at IS NULL AND expires_at > ?`,
			aal, strings.Join(amr, ","), ms(authTime), sessionID, ms(now)))
	})
}

// RevokeSessions revokes a user's active sessions: one, all, or all but one.
func (db *DB) RevokeSessions(ctx context.Context, userID, sessionID, except, reason string, now time.Time) (int, error) {
	var n int64
	err := db.writeOp(ctx, false, func(r runner) error {
		res, err := r.exec(ctx, `UPDATE sessions SET revoked_at = ?, revoke_reason = ?
			WHERE user_id = ? AND revoked_at IS NULL AND expires_at > ? AND (? = '' OR id = ?) AND id <> ?`,
			ms(now), reason, userID, ms(now), sessionID, sessionID, except)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return int(n), err
}

// RotateRefreshToken rotates a refresh token in one step: the conditional
// UPDATE lets exactly one of two racing uses win.
func (db *DB) RotateRefreshToken(ctx context.Context, hash []byte, next *tessera.RefreshToken, successorSealed []byte, now time.Time) (*tessera.Session, *tessera.RefreshToken, error) {
	var sess *tessera.Session
	var old *tessera.RefreshToken
	err := db.writeOp(ctx, true, func(r runner) error {
		var err error
		if old, err = readRefreshToken(ctx, r, hash); err != nil {
			return err
		}
		if sess, err = scanSession(r.queryRow(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, old.SessionID)); err != nil {
			return err
		}
		if !sess.Active(now) {
			return notFound()
		}
		res, err := r.exec(ctx, `UPDATE refresh_tokens SET used_at = ?, successor_sealed = ? WHERE hash = ? AND used_at IS NULL`, ms(now), successorSealed, hash)
		if err := oneRow(res, err); tessera.ErrorCode(err) == tessera.ENOTFOUND {
			// Used already: hand back the stored row, for the grace check.
			if old, err = readRefreshToken(ctx, r, hash); err != nil {
				return err
			}
			return tessera.Errorf(tessera.ECONFLICT, "Refresh token already used")
		} else if err != nil {
			return err
		}
		if _, err := r.exec(ctx, `INSERT INTO refresh_tokens (hash, session_id, created_at, used_at, successor_sealed) VALUES (?, ?, ?, NULL, NULL)`,
			next.Hash, sess.ID, ms(next.CreatedAt)); err != nil {
			return err
		}
		if _, err := r.exec(ctx, `UPDATE sessions SET last_used_at = ? WHERE id = ?`, ms(now), sess.ID); err != nil {
			return err
		}
		_, err = r.exec(ctx, eraseSpentSuccessors, sess.ID, ms(now.Add(-successorKept)))
		return err
	})
	switch tessera.ErrorCode(err) {
	case "", tessera.ECONFLICT:
		return sess, old, err
	}
	return nil, nil, err
}

func readRefreshToken(ctx context.Context, r runner, hash []byte) (*tessera.RefreshToken, error) {
	var t tessera.RefreshToken
	var created int64
	var used sql.NullInt64
	err := r.queryRow(ctx, `SELECT hash, session_id, created_at, used_at, successor_sealed FROM refresh_tokens WHERE hash = ?`, hash).
		Scan(&t.Hash, &t.SessionID, &created, &used, &t.SuccessorSealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	t.CreatedAt, t.UsedAt = fromMS(created), fromNullMS(used)
	return &t, nil
}

// ---- recovery codes ----

// ReplaceRecoveryCodes voids the old set and stores the new one together,
// with the credential row that says a set is issued (none for an empty one).
func (db *DB) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes [][]byte, now time.Time) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if _, err := r.exec(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := r.exec(ctx, `INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, NULL)`, userID, h, ms(now)); err != nil {
				return err
			}
		}
		if len(hashes) == 0 {
			_, err := r.exec(ctx, `DELETE FROM credentials WHERE user_id = ? AND kind = 'recovery_codes'`, userID)
			return err
		}
		_, err := r.exec(ctx, credentialInsert+`SELECT id, 'recovery_codes', '', '', '', '', ?, NULL, ?, NULL FROM users WHERE id = ?
			ON CONFLICT (user_id, kind) DO UPDATE SET verified_at = excluded.verified_at, created_at = excluded.created_at, last_used_at = NULL`,
			ms(now), ms(now), userID)
		return err
	})
}

// UseRecoveryCode consumes a code once, and records the set's use.
func (db *DB) UseRecoveryCode(ctx context.Context, userID string, hash []byte, now time.Time) error {
	return db.writeOp(ctx, true, func(r runner) error {
		if err := oneRow(r.exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE user_id = ? AND hash = ? AND used_at IS NULL`, ms(now), userID, hash)); err != nil {
			return err
		}
		_, err := r.exec(ctx, `UPDATE credentials SET last_used_at = ? WHERE user_id = ? AND kind = 'recovery_codes'`, ms(now), userID)
		return err
	})
}

// RecoveryCodesLeft counts unused codes.
func (db *DB) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := db.reader().queryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&n)
	return n, err
}

// ---- flows ----

const flowColumns = `id, type, state, user_id, email_key, session_id, label, secret, challenge, required_aal, aal, methods, csrf_secret, attempts, max_attempts,
	created_at, expires_at, used_at, user_agent, ip`

func scanFlow(row scanner) (*tessera.Flow, error) {
	var f tessera.Flow
	var typ, methods string
	var created, expires int64
	var used sql.NullInt64
	err := row.Scan(&f.ID, &typ, &f.State, &f.UserID, &f.Email, &f.SessionID, &f.Label, &f.Secret, &f.Challenge, &f.RequiredAAL, &f.AAL, &methods, &f.CSRFSecret,
		&f.Attempts, &f.MaxAttempts, &created, &expires, &used, &f.UserAgent, &f.IP)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	f.Type = tessera.FlowType(typ)
	if methods != "" {
		f.Methods = strings.Split(methods, ",")
	}
	f.CreatedAt, f.ExpiresAt, f.UsedAt = fromMS(created), fromMS(expires), fromNullMS(used)
	return &f, nil
}

// CreateFlow stores a new flow.
func (db *DB) CreateFlow(ctx context.Context, f *tessera.Flow) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `INSERT INTO flows (`+flowColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)`,
			f.ID, string(f.Type), f.State, f.UserID, strings.ToLower(f.Email), f.SessionID, f.Label, f.Secret, f.Challenge, f.RequiredAAL, f.AAL, strings.Join(f.Methods, ","),
			f.CSRFSecret, f.Attempts, f.MaxAttempts, ms(f.CreatedAt), ms(f.ExpiresAt), f.UserAgent, f.IP)
		return err
	})
}

// Flow returns a flow.
func (db *DB) Flow(ctx context.Context, id string) (*tessera.Flow, error) {
	return scanFlow(db.reader().queryRow(ctx, `SELECT `+flowColumns+` FROM flows WHERE id = ?`, id))
}

// PendingRegistrations lists live registration flows of an address.
func (db *DB) PendingRegistrations(ctx context.Context, email string, now time.Time, limit int) ([]*tessera.Flow, error) {
	rows, err := db.reader().query(ctx, `SELECT `+flowColumns+` FROM flows
		WHERE type = 'registration' AND email_key = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id LIMIT ?`,
		strings.ToLower(email), ms(now), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.Flow
	for rows.Next() {
		f, err := scanFlow(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, rows.Err()
}

// LatestFlow returns the user's newest live flow of a type.
func (db *DB) LatestFlow(ctx context.Context, userID string, typ tessera.FlowType, now time.Time) (*tessera.Flow, error) {
	return scanFlow(db.reader().queryRow(ctx, `SELECT `+flowColumns+` FROM flows
		WHERE user_id = ? AND type = ? AND used_at IS NULL AND expires_at > ? ORDER BY created_at DESC, id DESC LIMIT 1`,
		userID, string(typ), ms(now)))
}

// AdvanceFlow moves a flow on in one compare-and-set UPDATE.
func (db *DB) AdvanceFlow(ctx context.Context, f *tessera.Flow, fromState string, now time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE flows SET type = ?, state = ?, methods = ?, aal = ?, secret = ?, challenge = ?
			WHERE id = ? AND state = ? AND used_at IS NULL AND expires_at > ?`,
			string(f.Type), f.State, strings.Join(f.Methods, ","), f.AAL, f.Secret, f.Challenge, f.ID, fromState, ms(now)))
	})
}

// ReserveFlowAttempt counts an attempt in one conditional UPDATE.
func (db *DB) ReserveFlowAttempt(ctx context.Context, id string, now time.Time) (*tessera.Flow, error) {
	var f *tessera.Flow
	err := db.writeOp(ctx, false, func(r runner) error {
		var err error
		f, err = scanFlow(r.queryRow(ctx, `UPDATE flows SET attempts = attempts + 1
			WHERE id = ? AND used_at IS NULL AND expires_at > ? AND attempts < max_attempts RETURNING `+flowColumns, id, ms(now)))
		if tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return err
		}
		if f, err = scanFlow(r.queryRow(ctx, `SELECT `+flowColumns+` FROM flows WHERE id = ?`, id)); err != nil {
			return err
		}
		switch {
		case !f.UsedAt.IsZero():
			return notFound()
		case !now.Before(f.ExpiresAt):
			return tessera.Errorf(tessera.EEXPIRED, "This flow expired: start again")
		}
		return tessera.Errorf(tessera.ELOCKED, "Too many attempts: start again")
	})
	return f, err
}

// EndFlows marks a user's unused flows of the given types used.
func (db *DB) EndFlows(ctx context.Context, userID string, types []tessera.FlowType, now time.Time) error {
	if len(types) == 0 {
		return nil
	}
	args := []any{ms(now), userID}
	for _, t := range types {
		args = append(args, string(t))
	}
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `UPDATE flows SET used_at = ? WHERE user_id = ? AND used_at IS NULL AND type IN (?`+strings.Repeat(", ?", len(types)-1)+`)`, args...)
		return err
	})
}

// UseFlow marks a flow used once.
func (db *DB) UseFlow(ctx context.Context, id string, now time.Time) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `UPDATE flows SET used_at = ? WHERE id = ? AND used_at IS NULL AND expires_at > ?`, ms(now), id, ms(now)))
	})
}

// ---- signing keys ----

// CreateSigningKey stores a signing key; a taken generation is ECONFLICT.
func (db *DB) CreateSigningKey(ctx context.Context, k *tessera.SigningKey) error {
	err := db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `INSERT INTO signing_keys (id, algorithm, public_key, private_sealed, generation, created_at, activates_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			k.ID, k.Algorithm, k.PublicKey, k.PrivateSealed, k.Generation, ms(k.CreatedAt), ms(k.ActivatesAt))
		return err
	})
	if err != nil && strings.Contains(strings.ToLower(err.Error()), "unique") {
		return tessera.Errorf(tessera.ECONFLICT, "Signing key generation %d exists already", k.Generation)
	}
	return err
}

// DeleteSigningKey removes a signing key.
func (db *DB) DeleteSigningKey(ctx context.Context, id string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
		return err
	})
}

// SigningKeys lists signing keys, latest generation first.
func (db *DB) SigningKeys(ctx context.Context) ([]*tessera.SigningKey, error) {
	rows, err := db.reader().query(ctx, `SELECT id, algorithm, public_key, private_sealed, generation, created_at, activates_at FROM signing_keys ORDER BY generation DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.SigningKey
	for rows.Next() {
		var k tessera.SigningKey
		var created, activates int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PublicKey, &k.PrivateSealed, &k.Generation, &created, &activates); err != nil {
			return nil, err
		}
		k.CreatedAt, k.ActivatesAt = fromMS(created), fromMS(activates)
		out = append(out, &k)
	}
	return out, rows.Err()
}

// ---- audit log ----

const auditColumns = `id, at, kind, user_id, email, ip, user_agent, detail`

// AppendAudit records a security event; the database assigns its id.
func (db *DB) AppendAudit(ctx context.Context, e *tessera.AuditEvent) error {
	var id int64
	err := db.writeOp(ctx, false, func(r runner) error {
		return r.queryRow(ctx, `INSERT INTO audit_events (at, kind, user_id, email, email_key, ip, user_agent, detail)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
			ms(e.At), e.Kind, e.UserID, e.Email, strings.ToLower(e.Email), e.IP, e.UserAgent, e.Detail).Scan(&id)
	})
	if err != nil {
		return err
	}
	e.ID = strconv.FormatInt(id, 10)
	return nil
}

// AuditEvents lists the selected events, newest first. Each filter adds a
// condition, so the indexes on (user_id, at), (email_key, at) and (at) serve it.
func (db *DB) AuditEvents(ctx context.Context, f tessera.AuditFilter) ([]*tessera.AuditEvent, error) {
	var where []string
	var args []any
	if f.UserID != "" {
		where, args = append(where, `user_id = ?`), append(args, f.UserID)
	}
	if f.Email != "" {
		where, args = append(where, `email_key = ?`), append(args, strings.ToLower(f.Email))
	}
	if f.Kind != "" {
		where, args = append(where, `kind = ?`), append(args, f.Kind)
	}
	if !f.Since.IsZero() {
		where, args = append(where, `at >= ?`), append(args, ms(f.Since))
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = tessera.DefaultAuditLimit
	case limit > tessera.MaxAuditLimit:
		limit = tessera.MaxAuditLimit
	}
	q := `SELECT ` + auditColumns + ` FROM audit_events`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	q += ` ORDER BY at DESC, id DESC LIMIT ?`
	rows, err := db.reader().query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.AuditEvent
	for rows.Next() {
		var e tessera.AuditEvent
		var id, at int64
		if err := rows.Scan(&id, &at, &e.Kind, &e.UserID, &e.Email, &e.IP, &e.UserAgent, &e.Detail); err != nil {
			return nil, err
		}
		e.ID, e.At = strconv.FormatInt(id, 10), fromMS(at)
		out = append(out, &e)
	}
	return out, rows.Err()
}

// PruneAudit deletes old audit events.
func (db *DB) PruneAudit(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.writeOp(ctx, false, func(r runner) error {
		res, err := r.exec(ctx, `DELETE FROM audit_events WHERE at < ?`, ms(before))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}
