package sqlstore

import (
	"context"
	"strings"

	"github.com/tessera-id/tessera"
)

// likeEscape makes s match itself inside a LIKE pattern (ESCAPE '\').
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// ListUsers lists users in (created_at, id) order, from the position
// after q.After: a page never skips or repeats a user, whatever is
// created meanwhile.
func (db *DB) ListUsers(ctx context.Context, q tessera.UserQuery) ([]*tessera.User, error) {
	var where []string
	var args []any
	if q.Email != "" {
		where = append(where, `e.identifier_key LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(strings.ToLower(q.Email))+"%")
	}
	if q.Phone != "" {
		where = append(where, `p.identifier LIKE ? ESCAPE '\'`)
		args = append(args, "%"+likeEscape(q.Phone)+"%")
	}
	if q.Status != "" {
		where, args = append(where, `u.status = ?`), append(args, string(q.Status))
	}
	if !q.CreatedFrom.IsZero() {
		where, args = append(where, `u.created_at >= ?`), append(args, ms(q.CreatedFrom))
	}
	if !q.CreatedTo.IsZero() {
		where, args = append(where, `u.created_at < ?`), append(args, ms(q.CreatedTo))
	}
	if !q.LastLoginFrom.IsZero() {
		where, args = append(where, `u.last_login_at >= ?`), append(args, ms(q.LastLoginFrom))
	}
	if !q.LastLoginTo.IsZero() {
		where, args = append(where, `u.last_login_at < ?`), append(args, ms(q.LastLoginTo))
	}
	if q.After != nil {
		where = append(where, `(u.created_at > ? OR (u.created_at = ? AND u.id > ?))`)
		args = append(args, ms(q.After.CreatedAt), ms(q.After.CreatedAt), q.After.ID)
	}
	query := userSelect
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	query += ` ORDER BY u.created_at, u.id LIMIT ?`
	rows, err := db.reader().query(ctx, query, append(args, q.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// inList returns "(?, ?, ...)" for n values; n must be at least 1.
func inList(n int) string { return "(?" + strings.Repeat(", ?", n-1) + ")" }

func anys(values []string) []any {
	out := make([]any, len(values))
	for i, v := range values {
		out[i] = v
	}
	return out
}

// DeleteUser erases a user: the account and its credentials, sessions and
// refresh tokens, recovery codes, flows, audit events, the codes, TOTP
// secret and messages of the account's owner sent to the user's id or
// addresses, send-limit counters and idempotency records.
func (db *DB) DeleteUser(ctx context.Context, e tessera.Erasure) error {
	keys := []string{strings.ToLower(e.UserID)}
	for _, a := range e.Addresses {
		if a != "" {
			keys = append(keys, strings.ToLower(a))
		}
	}
	return db.writeOp(ctx, true, func(r runner) error {
		if err := userExists(ctx, r, e.UserID); err != nil {
			return err
		}
		in := inList(len(keys))
		owned := append([]any{e.Owner}, anys(keys)...)
		steps := []struct {
			query string
			args  []any
		}{
			{`DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = ?)`, []any{e.UserID}},
			{`DELETE FROM sessions WHERE user_id = ?`, []any{e.UserID}},
			{`DELETE FROM recovery_codes WHERE user_id = ?`, []any{e.UserID}},
			{`DELETE FROM flows WHERE user_id = ? OR email_key IN ` + in, append([]any{e.UserID}, anys(keys)...)},
			{`DELETE FROM credentials WHERE user_id = ?`, []any{e.UserID}},
			{`DELETE FROM users WHERE id = ?`, []any{e.UserID}},
			{`DELETE FROM audit_events WHERE user_id = ? OR email_key IN ` + in, append([]any{e.UserID}, anys(keys)...)},
			{`DELETE FROM verifications WHERE owner = ? AND LOWER(consumer) IN ` + in, owned},
			{`DELETE FROM totp_secrets WHERE owner = ? AND LOWER(consumer) IN ` + in, owned},
			{`DELETE FROM outbox WHERE owner = ? AND LOWER(recipient) IN ` + in, owned},
		}
		if len(e.SendLimitKeys) > 0 {
			steps = append(steps, struct {
				query string
				args  []any
			}{`DELETE FROM send_limits WHERE key IN ` + inList(len(e.SendLimitKeys)), anys(e.SendLimitKeys)})
		}
		if len(e.IdempotencyScopes) > 0 {
			steps = append(steps, struct {
				query string
				args  []any
			}{`DELETE FROM idempotency_keys WHERE scope IN ` + inList(len(e.IdempotencyScopes)), anys(e.IdempotencyScopes)})
		}
		for _, st := range steps {
			if _, err := r.exec(ctx, st.query, st.args...); err != nil {
				return err
			}
		}
		return nil
	})
}
