package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/tessera-id/tessera"
)

// ---- message templates and sending policies ----

const templateColumns = `id, locale, subject, body, created_at`

func scanTemplate(row scanner) (*tessera.MessageTemplate, error) {
	var t tessera.MessageTemplate
	var created int64
	if err := row.Scan(&t.ID, &t.Locale, &t.Subject, &t.Body, &created); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound()
		}
		return nil, err
	}
	t.CreatedAt = fromMS(created)
	return &t, nil
}

// PutTemplate stores a template, replacing one with the same id and locale.
func (db *DB) PutTemplate(ctx context.Context, t *tessera.MessageTemplate) error {
	return db.writeOp(ctx, false, func(r runner) error {
		_, err := r.exec(ctx, `INSERT INTO message_templates (`+templateColumns+`) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id, locale) DO UPDATE SET subject = excluded.subject, body = excluded.body, created_at = excluded.created_at`,
			t.ID, t.Locale, t.Subject, t.Body, ms(t.CreatedAt))
		return err
	})
}

// Template returns one template.
func (db *DB) Template(ctx context.Context, id, locale string) (*tessera.MessageTemplate, error) {
	return scanTemplate(db.reader().queryRow(ctx, `SELECT `+templateColumns+` FROM message_templates WHERE id = ? AND locale = ?`, id, locale))
}

// Templates lists every template.
func (db *DB) Templates(ctx context.Context) ([]*tessera.MessageTemplate, error) {
	rows, err := db.reader().query(ctx, `SELECT `+templateColumns+` FROM message_templates ORDER BY id, locale`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*tessera.MessageTemplate
	for rows.Next() {
		t, err := scanTemplate(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// DeleteTemplate removes a template.
func (db *DB) DeleteTemplate(ctx context.Context, id, locale string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `DELETE FROM message_templates WHERE id = ? AND locale = ?`, id, locale))
	})
}

// SetSendingPolicy stores a client's policy. The row is inserted from the
// client's row, so a missing client changes nothing and is ENOTFOUND.
func (db *DB) SetSendingPolicy(ctx context.Context, p *tessera.SendingPolicy) error {
	only := 0
	if p.TemplatesOnly {
		only = 1
	}
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `INSERT INTO client_sending_policies (client_id, from_allow, templates_only, updated_at)
			SELECT id, ?, ?, ? FROM clients WHERE id = ?
			ON CONFLICT (client_id) DO UPDATE SET from_allow = excluded.from_allow, templates_only = excluded.templates_only, updated_at = excluded.updated_at`,
			strings.Join(p.FromAllow, "\n"), only, ms(p.UpdatedAt), p.ClientID))
	})
}

// SendingPolicy returns a client's policy.
func (db *DB) SendingPolicy(ctx context.Context, clientID string) (*tessera.SendingPolicy, error) {
	p := tessera.SendingPolicy{ClientID: clientID}
	var allow string
	var only int
	var updated int64
	err := db.reader().queryRow(ctx, `SELECT from_allow, templates_only, updated_at FROM client_sending_policies WHERE client_id = ?`, clientID).
		Scan(&allow, &only, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound()
	}
	if err != nil {
		return nil, err
	}
	if allow != "" {
		p.FromAllow = strings.Split(allow, "\n")
	}
	p.TemplatesOnly, p.UpdatedAt = only != 0, fromMS(updated)
	return &p, nil
}

// DeleteSendingPolicy removes a client's policy.
func (db *DB) DeleteSendingPolicy(ctx context.Context, clientID string) error {
	return db.writeOp(ctx, false, func(r runner) error {
		return oneRow(r.exec(ctx, `DELETE FROM client_sending_policies WHERE client_id = ?`, clientID))
	})
}
