package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// successorKept is how long a spent refresh token keeps its sealed
// successor: longer than any reuse grace (10 s by default), so a second
// tab within the grace still gets the successor; after it, the live token
// is not kept at rest twice.
const successorKept = time.Minute

// eraseSpentSuccessors erases, on each rotation, the sealed successors the
// session's spent tokens still carry past successorKept.
//
// Why a rotation costs the same on its 1st and its 3,000th use: the spent
// tokens themselves stay until their session ends (presenting one after the
// grace is reuse, which revokes the session), so a session accumulates
// rows. The partial index refresh_tokens_successor (migration 019) holds
// only the rows that still carry a successor, and each rotation empties it
// of the ones older than successorKept, so this statement visits the
// tokens rotated within the last minute plus the one before them, whatever
// the session's age. RotationRowsVisited measures it, for the conformance
// suite.
const eraseSpentSuccessors = `UPDATE refresh_tokens SET successor_sealed = NULL
	WHERE session_id = ? AND used_at < ? AND successor_sealed IS NOT NULL`

// RotationRowsVisited reports how many refresh_tokens rows the erase step
// of a rotation of sessionID at now would visit, from the database's own
// plan: on PostgreSQL the scan nodes' actual rows (EXPLAIN ANALYZE, in a
// transaction that is rolled back), on SQLite the rows in the index range
// (or table) that EXPLAIN QUERY PLAN says it searches. It changes nothing.
func (db *DB) RotationRowsVisited(ctx context.Context, sessionID string, now time.Time) (int, error) {
	cutoff := ms(now.Add(-successorKept))
	if db.dialect.name == "postgres" {
		return db.postgresRowsVisited(ctx, sessionID, cutoff)
	}
	return db.sqliteRowsVisited(ctx, sessionID, cutoff)
}

func (db *DB) postgresRowsVisited(ctx context.Context, sessionID string, cutoff int64) (int, error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // the point is to undo the UPDATE
	var out []byte
	if err := tx.QueryRowContext(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+db.rebind(eraseSpentSuccessors), sessionID, cutoff).Scan(&out); err != nil {
		return 0, err
	}
	var plans []struct{ Plan planNode }
	if err := json.Unmarshal(out, &plans); err != nil || len(plans) != 1 {
		return 0, fmt.Errorf("explain: %v in %s", err, out)
	}
	return plans[0].Plan.rowsVisited(), nil
}

// planNode is the part of a PostgreSQL JSON plan node that says how many
// rows a scan read.
type planNode struct {
	NodeType      string     `json:"Node Type"`
	Relation      string     `json:"Relation Name"`
	ActualRows    float64    `json:"Actual Rows"`
	ActualLoops   float64    `json:"Actual Loops"`
	FilterRemoved float64    `json:"Rows Removed by Filter"`
	RecheckRemove float64    `json:"Rows Removed by Index Recheck"`
	Plans         []planNode `json:"Plans"`
}

// rowsVisited sums the rows the scans of refresh_tokens read: those they
// returned and those they read and filtered out.
func (n planNode) rowsVisited() int {
	total := 0.0
	if n.Relation == "refresh_tokens" && n.NodeType != "ModifyTable" {
		total += (n.ActualRows + n.FilterRemoved + n.RecheckRemove) * max(n.ActualLoops, 1)
	}
	for _, c := range n.Plans {
		total += float64(c.rowsVisited())
	}
	return int(total)
}

// sqlitePlanIndex matches EXPLAIN QUERY PLAN's detail of an index search.
var sqlitePlanIndex = regexp.MustCompile(`USING (?:COVERING )?INDEX (\w+) \(([^)]*)\)`)

func (db *DB) sqliteRowsVisited(ctx context.Context, sessionID string, cutoff int64) (int, error) {
	rows, err := db.read.QueryContext(ctx, `EXPLAIN QUERY PLAN `+eraseSpentSuccessors, sessionID, cutoff)
	if err != nil {
		return 0, err
	}
	var details []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			rows.Close()
			return 0, err
		}
		details = append(details, detail)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	plan := strings.Join(details, "; ")
	m := sqlitePlanIndex.FindStringSubmatch(plan)
	if m == nil {
		// A full scan visits every row.
		var n int
		err := db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM refresh_tokens`).Scan(&n)
		return n, err
	}
	// Count what the search visits: the index's range (its constraints, in
	// the plan's words) within the index's own rows (its WHERE, if partial).
	index, terms := m[1], strings.Split(m[2], " AND ")
	values := map[string]any{"session_id": sessionID, "used_at": cutoff}
	var where []string
	var args []any
	for _, term := range terms {
		col := strings.TrimRight(term, "=<>?")
		v, ok := values[col]
		if !ok || !strings.HasSuffix(term, "?") {
			return 0, fmt.Errorf("unexpected plan %q", plan)
		}
		where = append(where, term)
		args = append(args, v)
	}
	var ddl sql.NullString // NULL for the primary key's own index
	if err := db.read.QueryRowContext(ctx, `SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?`, index).Scan(&ddl); err != nil {
		return 0, err
	}
	if i := strings.LastIndex(strings.ToUpper(ddl.String), " WHERE "); i >= 0 {
		where = append(where, ddl.String[i+len(" WHERE "):])
	}
	var n int
	err = db.read.QueryRowContext(ctx, `SELECT COUNT(*) FROM refresh_tokens INDEXED BY `+index+` WHERE `+strings.Join(where, " AND "), args...).Scan(&n)
	return n, err
}
