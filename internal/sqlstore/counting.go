package sqlstore

import "sync/atomic"

// StatementCounts are the statements a store sent to its database since it
// was opened. Reads ran on the read pool; Writes on the write path, with
// the BEGIN, COMMIT and SAVEPOINT statements of its transactions (on SQLite
// those of the group commit, so their share per write falls as more writes
// share a commit). Each is a round trip on PostgreSQL.
type StatementCounts struct {
	Reads, Writes int64
}

// statementCounter counts statements for StatementCounts: a countable cost
// that, unlike a timing, does not depend on what else the machine does.
type statementCounter struct {
	reads, writes atomic.Int64
}

// Statements returns the statements sent so far.
func (db *DB) Statements() StatementCounts {
	return StatementCounts{Reads: db.counter.reads.Load(), Writes: db.counter.writes.Load()}
}

// count records one statement run through pool.
func (db *DB) count(pool poolKind) {
	if pool == readPool {
		db.counter.reads.Add(1)
	} else {
		db.counter.writes.Add(1)
	}
}

type poolKind bool

const (
	readPool  poolKind = true
	writePool poolKind = false
)
