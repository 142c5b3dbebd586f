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
