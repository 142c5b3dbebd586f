package sqlstore

import (
	"context"
	"database/sql"
)

// MigrateTo applies the dialect's migrations up to version, for tests of
// what a later migration does to existing data.
func MigrateTo(ctx context.Context, db *sql.DB, dialect string, version int) error {
	return migrateTo(ctx, db, dialect, "", version)
}

// OpenSQLiteWithoutCheckpoints opens a SQLite store whose WAL is never
// checkpointed while it is open: its size then counts every page written.
func OpenSQLiteWithoutCheckpoints(ctx context.Context, path string) (*DB, error) {
	return openSQLite(ctx, path, SQLiteOptions{}, false)
}
