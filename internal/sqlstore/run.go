package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/tessera-id/tessera"
)

// runner runs statements written with '?' placeholders: on a pool, in a
// PostgreSQL transaction, or on SQLite's writer connection inside a group
// commit. Store methods are written once against it.
type runner interface {
	exec(ctx context.Context, query string, args ...any) (sql.Result, error)
	queryRow(ctx context.Context, query string, args ...any) *sql.Row
	query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// poolRunner runs prepared statements on a pool; database/sql prepares
// each on every connection it is used on and keeps it there.
type poolRunner struct {
	db   *DB
	pool *sql.DB
	kind poolKind
}

func (p poolRunner) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p.db.count(p.kind)
	st, err := p.db.prepared(ctx, p.pool, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

func (p poolRunner) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	p.db.count(p.kind)
	st, err := p.db.prepared(ctx, p.pool, query)
	if err != nil {
		// Let the error surface from Scan, as with QueryRow.
		return p.pool.QueryRowContext(ctx, p.db.rebind(query), args...)
	}
	return st.QueryRowContext(ctx, args...)
}

func (p poolRunner) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	p.db.count(p.kind)
	st, err := p.db.prepared(ctx, p.pool, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// txRunner runs statements in a transaction (PostgreSQL, where the driver
// caches prepared statements per connection by itself).
type txRunner struct {
	db *DB
	tx *sql.Tx
}

func (t txRunner) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.db.count(writePool)
	return t.tx.ExecContext(ctx, t.db.rebind(query), args...)
}

func (t txRunner) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	t.db.count(writePool)
	return t.tx.QueryRowContext(ctx, t.db.rebind(query), args...)
}

func (t txRunner) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.db.count(writePool)
	return t.tx.QueryContext(ctx, t.db.rebind(query), args...)
}

// prepared returns the statement for query on pool, preparing it the
// first time.
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

// reader runs read-only statements (in the transaction, for a DB bound
// to one).
func (db *DB) reader() runner {
	if db.tx != nil {
		return db.tx
	}
	return poolRunner{db, db.read, readPool}
}

// InTx runs fn with a DB bound to one transaction: every Store and
// AccountStore method fn calls on it commits with the others, or none
// does. On SQLite fn runs inside the group commit on the writer, so it
// must be quick; on PostgreSQL it gets a transaction of its own.
func (db *DB) InTx(ctx context.Context, fn func(tx tessera.TxStore) error) error {
	if db.tx != nil {
		return fn(db) // already in one: join it
	}
	return db.writeOp(ctx, true, func(r runner) error {
		return fn(&DB{shared: db.shared, tx: r})
	})
}

// writeAtomic runs fn, whose statements must commit together, and which
// undoes its own earlier statements when a later one fails. On SQLite it
// joins the group commit without a savepoint; on PostgreSQL it gets a
// transaction.
func (db *DB) writeAtomic(ctx context.Context, fn func(r runner) error) error {
	if db.tx != nil {
		return fn(db.tx)
	}
	if db.batch != nil {
		return db.batch.do(ctx, false, fn)
	}
	return db.writeOp(ctx, true, fn)
}

// writeOp runs fn, which changes state, and returns once the change is
// committed. multi says fn runs more than one statement that must commit
// together. On SQLite fn joins a group commit (see batcher); it must not
// call other Store methods.
func (db *DB) writeOp(ctx context.Context, multi bool, fn func(r runner) error) error {
	if db.tx != nil {
		return fn(db.tx)
	}
	if db.batch != nil {
		return db.batch.do(ctx, multi, fn)
	}
	if !multi {
		return fn(poolRunner{db, db.write, writePool})
	}
	db.count(writePool) // BEGIN
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(txRunner{db, tx}); err != nil {
		_ = tx.Rollback()
		return err
	}
	db.count(writePool) // COMMIT
	return tx.Commit()
}
