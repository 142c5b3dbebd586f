package httpapi_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base32"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

// TestDatabaseDumpHoldsNoSecrets drives every flow of both APIs once through
// HTTP, keeping every secret a person saw or typed (codes, one-time tokens,
// TOTP secrets and codes, passwords, ID and refresh tokens, recovery codes,
// the API client token, anti-phishing codes), then dumps the whole
// database, every table and (on SQLite) every byte of its files, and
// searches the dump for each secret in plain text. The database is also
// dumped before every delivery, while codes wait in the outbox.
func TestDatabaseDumpHoldsNoSecrets(t *testing.T) {
	for _, s := range []struct {
		name string
		open func(t *testing.T) (app.Storage, *dumpTarget)
	}{
		{"sqlite", openSQLiteForDump},
		{"postgres", openPostgresForDump},
	} {
		t.Run(s.name, func(t *testing.T) {
			store, target := s.open(t)
			h := &dumpHunt{t: t, target: target, seen: map[string]bool{}}
			h.checkSearchFindsACanary()
			h.e = newEnv(t, store)
			h.verificationFlows()
			h.accountFlows()
			h.deliver()
			h.snapshot("at the end")
			if after := target.closeAndReadFiles(t); after != nil {
				h.snaps = append(h.snaps, snapshot{when: "after the store was closed", cells: after})
			}
			h.checkDumpIsReal()
			h.search()
		})
	}
}

// ---- the database, dumped ----

// cell is one value of the dump: one column of one row, or a whole file.
type cell struct {
	where string
	b     []byte
	file  bool
}

type snapshot struct {
	when  string
	cells []cell
}

// dumpTarget reads a store's database from the outside.
type dumpTarget struct {
	dialect string
	db      *sql.DB // a connection of the test's own, not the store's
	tables  func(t *testing.T) []string
	files   func(t *testing.T) []cell // raw database files; nil on PostgreSQL
	// closeAndReadFiles closes the store and returns its files' bytes
	// (nil on PostgreSQL).
	closeAndReadFiles func(t *testing.T) []cell
}

func openSQLiteForDump(t *testing.T) (app.Storage, *dumpTarget) {
	dir := t.TempDir()
	path := filepath.Join(dir, "tessera.db")
	store, err := sqlstore.OpenSQLite(context.Background(), path, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	readFiles := func(t *testing.T) []cell {
		names, err := filepath.Glob(filepath.Join(dir, "tessera.db*"))
		if err != nil || len(names) == 0 {
			t.Fatalf("no database files in %s (%v)", dir, err)
		}
		var out []cell
		for _, name := range names {
			raw, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, cell{where: "file " + filepath.Base(name), b: raw, file: true})
		}
		return out
	}
	return store, &dumpTarget{
		dialect: "sqlite",
		db:      db,
		tables: func(t *testing.T) []string {
			return queryStrings(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`)
		},
		files: readFiles,
		closeAndReadFiles: func(t *testing.T) []cell {
			// The test's connection first, so the store's is the last one
			// and closing it checkpoints the WAL as in production.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := store.Close(); err != nil {
				t.Fatal(err)
			}
			return readFiles(t)
		},
	}
}

func openPostgresForDump(t *testing.T) (app.Storage, *dumpTarget) {
	dsn := storetest.PostgresSchema(t)
	store, err := sqlstore.OpenPostgres(context.Background(), dsn, 8)
	if err != nil {
		t.Fatalf("postgres from %s: %v", storetest.PostgresEnv, err)
	}
	t.Cleanup(func() { store.Close() })
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	if got := queryStrings(t, db, `SELECT current_schema()`); schema == "" || len(got) != 1 || got[0] != schema {
		t.Fatalf("the dump connection works in schema %v, want the test's %q", got, schema)
	}
	return store, &dumpTarget{
		dialect: "postgres",
		db:      db,
		tables: func(t *testing.T) []string {
			return queryStrings(t, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`)
		},
		closeAndReadFiles: func(t *testing.T) []cell { return nil },
	}
}

func queryStrings(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dumpTables reads every row of every table, each column as the driver
// gives it: BLOB and bytea as raw bytes, anything else as text.
func (d *dumpTarget) dumpTables(t *testing.T) []cell {
	t.Helper()
	var out []cell
	tables := d.tables(t)
	if len(tables) == 0 {
		t.Fatal("the database has no tables to dump")
	}
	for _, table := range tables {
		q := `"` + strings.ReplaceAll(table, `"`, `""`) + `"`
		rows, err := d.db.Query(`SELECT * FROM ` + q)
		if err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatalf("dump %s: %v", table, err)
			}
			for i, v := range vals {
				if b := asBytes(v); b != nil {
					out = append(out, cell{where: "table " + table + ", column " + cols[i], b: b})
				}
			}
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("dump %s: %v", table, err)
		}
		rows.Close()
	}
	return out
}

func asBytes(v any) []byte {
	switch v := v.(type) {
	case nil:
		return nil
	case []byte:
		return append([]byte(nil), v...)
	case string:
		return []byte(v)
	case int64:
		return []byte(strconv.FormatInt(v, 10))
	case float64:
		return []byte(strconv.FormatFloat(v, 'g', -1, 64))
	case bool:
		return []byte(strconv.FormatBool(v))
	case time.Time:
		return []byte(v.Format(time.RFC3339Nano))
	default:
		return []byte(fmt.Sprint(v))
	}
}

// ---- secrets and the search ----

// secretSeen is one secret, with the forms it could take in a dump.
type secretSeen struct {
	kind, value string
	needles     [][]byte
	// bounded: a short all-digit code, which a longer number (a
	// timestamp) or a hex string (an id, a key) may hold by chance. It
	// counts only when no digit touches it and, in a value, when the word
	// around it is not all lower-case hex; in a raw file, where values
	// touch arbitrary bytes, only when no hex character touches it.
	bounded bool
}

type dumpHunt struct {
	t       *testing.T
	e       *env
	target  *dumpTarget
	secrets []secretSeen
	seen    map[string]bool
	snaps   []snapshot
	n       int // deliveries so far
}

func isShortDigits(s string) bool {
	if len(s) > 8 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// add records a secret, in the forms given (the value itself when none).
func (h *dumpHunt) add(kind, value string, forms ...[]byte) {
	h.t.Helper()
	if value == "" {
		h.t.Fatalf("an empty %s", kind)
	}
	if h.seen[value] {
		return
	}
	h.seen[value] = true
	if len(forms) == 0 {
		forms = [][]byte{[]byte(value)}
	}
	for _, f := range forms {
		if len(f) < 4 {
			h.t.Fatalf("%s: a needle of %d bytes is too short to search for", kind, len(f))
		}
	}
	h.secrets = append(h.secrets, secretSeen{kind: kind, value: value, needles: forms, bounded: isShortDigits(value)})
}

// addRecoveryCodes records recovery codes as shown, upper-cased (they are
// accepted so), and without the dash.
func (h *dumpHunt) addRecoveryCodes(kind string, r *response) []string {
	h.t.Helper()
	list, _ := r.body["recoveryCodes"].([]any)
	if len(list) != 10 {
		h.t.Fatalf("%s: no ten recovery codes in %s", kind, r.raw)
	}
	var out []string
	for _, c := range list {
		s := c.(string)
		flat := strings.ReplaceAll(s, "-", "")
		h.add(kind, s, []byte(s), []byte(strings.ToUpper(s)), []byte(flat), []byte(strings.ToUpper(flat)))
		out = append(out, s)
	}
	return out
}

// addTOTPSecret records a base32 TOTP secret in its base32 (both cases),
// raw, hex and base64 forms.
func (h *dumpHunt) addTOTPSecret(kind, b32 string) {
	h.t.Helper()
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.TrimRight(b32, "=")))
	if err != nil {
		h.t.Fatalf("%s %q is not base32: %v", kind, b32, err)
	}
	h.add(kind, b32, []byte(b32), []byte(strings.ToLower(b32)), raw,
		[]byte(hex.EncodeToString(raw)), []byte(base64.StdEncoding.EncodeToString(raw)), []byte(base64.RawURLEncoding.EncodeToString(raw)))
}

// addPrefixed records a token with and without its prefix.
func (h *dumpHunt) addPrefixed(kind, token, prefix string) {
	h.t.Helper()
	if !strings.HasPrefix(token, prefix) {
		h.t.Fatalf("%s %q lacks its prefix %q", kind, token, prefix)
	}
	h.add(kind, token, []byte(token), []byte(strings.TrimPrefix(token, prefix)))
}

// addIDToken records an ID token and its signature.
func (h *dumpHunt) addIDToken(kind, tok string) {
	h.t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		h.t.Fatalf("%s is not a JWT: %q", kind, tok)
	}
	h.add(kind, tok, []byte(tok), []byte(parts[2]))
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }

// isHexish says whether b may be part of a number or a hex string.
func isHexish(b byte) bool { return isDigit(b) || b >= 'a' && b <= 'f' }

func isAlnum(b byte) bool { return isDigit(b) || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' }

// chance says whether the short digit code at b[i:end] is most likely
// there by chance: inside a longer number or a hex string.
func chance(b []byte, i, end int, file bool) bool {
	if file {
		return i > 0 && isHexish(b[i-1]) || end < len(b) && isHexish(b[end])
	}
	if i > 0 && isDigit(b[i-1]) || end < len(b) && isDigit(b[end]) {
		return true
	}
	n := end - i
	for i > 0 && isAlnum(b[i-1]) {
		i--
	}
	for end < len(b) && isAlnum(b[end]) {
		end++
	}
	if end-i == n {
		return false // the code is a word of its own
	}
	for _, c := range b[i:end] {
		if !isHexish(c) {
			return false
		}
	}
	return true
}

// matcher finds many needles in one pass over a haystack.
type matcher struct {
	first2   [1 << 16]bool
	byPrefix map[uint32][]needleRef
}

type needleRef struct {
	secret int
	n      []byte
}

func newMatcher(secrets []secretSeen) *matcher {
	m := &matcher{byPrefix: map[uint32][]needleRef{}}
	for i, s := range secrets {
		for _, n := range s.needles {
			m.first2[binary.LittleEndian.Uint16(n)] = true
			k := binary.LittleEndian.Uint32(n)
			m.byPrefix[k] = append(m.byPrefix[k], needleRef{secret: i, n: n})
		}
	}
	return m
}

// scan calls found for each secret in b (a secret may be reported more
// than once); file says b is a raw file rather than one value.
func (m *matcher) scan(secrets []secretSeen, b []byte, file bool, found func(secret int)) {
	for i := 0; i+4 <= len(b); i++ {
		if !m.first2[binary.LittleEndian.Uint16(b[i:])] {
			continue
		}
		for _, r := range m.byPrefix[binary.LittleEndian.Uint32(b[i:])] {
			if !bytes.HasPrefix(b[i:], r.n) {
				continue
			}
			if secrets[r.secret].bounded && chance(b, i, i+len(r.n), file) {
				continue
			}
			found(r.secret)
		}
	}
}

// hits returns, for each secret, where in the snapshot it appears.
func hits(secrets []secretSeen, snap snapshot) map[int][]string {
	m := newMatcher(secrets)
	out := map[int][]string{}
	for _, c := range snap.cells {
		m.scan(secrets, c.b, c.file, func(s int) {
			if w := out[s]; len(w) == 0 || w[len(w)-1] != c.where {
				out[s] = append(w, c.where)
			}
		})
	}
	return out
}

// snapshot dumps every table and, on SQLite, the raw files.
func (h *dumpHunt) snapshot(when string) snapshot {
	h.t.Helper()
	s := snapshot{when: when, cells: h.target.dumpTables(h.t)}
	if h.target.files != nil {
		s.cells = append(s.cells, h.target.files(h.t)...)
	}
	h.snaps = append(h.snaps, s)
	return s
}

// search fails the test for every secret found in any snapshot, once per
// secret, naming every table column and file that holds it.
func (h *dumpHunt) search() {
	h.t.Helper()
	h.t.Logf("searched %d dumps of the database for %d secrets", len(h.snaps), len(h.secrets))
	places := map[int][]string{}
	seen := map[string]bool{}
	for _, snap := range h.snaps {
		for i, wheres := range hits(h.secrets, snap) {
			for _, w := range wheres {
				if !seen[fmt.Sprint(i, w)] {
					seen[fmt.Sprint(i, w)] = true
					places[i] = append(places[i], w+" ("+snap.when+")")
				}
			}
		}
	}
	for i, s := range h.secrets {
		if p := places[i]; len(p) > 0 {
			h.t.Errorf("%s %q is stored in plain text in: %s", s.kind, s.value, strings.Join(p, "; "))
		}
	}
}

// checkSearchFindsACanary puts secrets into a throwaway table on purpose,
// dumps the database and requires the search to find every one of them
// where it was put, so a broken dump or search cannot pass silently.
func (h *dumpHunt) checkSearchFindsACanary() {
	t := h.t
	t.Helper()
	blob := "BLOB"
	insert := `INSERT INTO zz_canary (note, raw) VALUES (?, ?)`
	if h.target.dialect == "postgres" {
		blob = "bytea"
		insert = `INSERT INTO zz_canary (note, raw) VALUES ($1, $2)`
	}
	if _, err := h.target.db.Exec(`CREATE TABLE zz_canary (note TEXT NOT NULL, raw ` + blob + ` NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const (
		code     = "402917"
		recovery = "k7m2p-q9x4t"
		totp     = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	)
	raw, _ := base32.StdEncoding.DecodeString(totp)
	if _, err := h.target.db.Exec(insert, "Your Tessera code is "+code+". Recovery: "+strings.ToUpper(recovery)+" for canary@example.com", raw); err != nil {
		t.Fatal(err)
	}
	canary := &dumpHunt{t: t, seen: map[string]bool{}}
	canary.add("canary code", code)
	canary.add("canary recovery code", recovery, []byte(recovery), []byte(strings.ToUpper(recovery)))
	canary.addTOTPSecret("canary TOTP secret", totp)
	canary.add("canary email", "canary@example.com")
	// A digit code inside a number or a hex id is not a hit.
	canary.add("canary code inside a number", "730194")
	snap := h.snapshot("canary")
	found := hits(canary.secrets, snap)
	for i, s := range canary.secrets {
		wheres := strings.Join(found[i], "; ")
		if s.value == "730194" {
			continue
		}
		if !strings.Contains(wheres, "table zz_canary") {
			t.Fatalf("the search did not find the %s put into a throwaway row on purpose (found in: %q)", s.kind, wheres)
		}
		if h.target.files != nil && !strings.Contains(wheres, "file tessera.db") {
			t.Fatalf("the search did not find the %s in the database files (found in: %q)", s.kind, wheres)
		}
	}
	// A short digit code inside a longer number or a hex id is there by
	// chance; next to letters it is not.
	probe := snapshot{cells: []cell{
		{where: "value", b: []byte("ts 17730194123 id 3fa7301940e-b730194")},
		{where: "file", b: []byte("\x00\x07f730194\x01"), file: true},
		{where: "next to letters", b: []byte("Tessera402917")},
	}}
	got := hits(canary.secrets, probe)
	for i, s := range canary.secrets {
		if s.value == "730194" && len(got[i]) > 0 {
			t.Fatalf("the search flags %s %q in %v", s.kind, s.value, got[i])
		}
		if s.value == "402917" && (len(got[i]) != 1 || got[i][0] != "next to letters") {
			t.Fatalf("the search finds %s %q in %v, want only next to letters", s.kind, s.value, got[i])
		}
	}
	if _, err := h.target.db.Exec(`DROP TABLE zz_canary`); err != nil {
		t.Fatal(err)
	}
	h.snaps = nil // the canary is no secret of the flows
}

// checkDumpIsReal requires the final dump to hold what is stored in plain
// text on purpose (an email address) and the search to cover every kind
// of secret.
func (h *dumpHunt) checkDumpIsReal() {
	t := h.t
	t.Helper()
	probe := &dumpHunt{t: t, seen: map[string]bool{}}
	probe.add("email", "kai.new@example.com")
	probe.add("phone", "+14155552672")
	for _, snap := range h.snaps {
		if snap.when != "at the end" {
			continue
		}
		found := hits(probe.secrets, snap)
		for i, s := range probe.secrets {
			if !strings.Contains(strings.Join(found[i], "; "), "table credentials") {
				t.Fatalf("the final dump does not show the %s %q in the credentials table, which holds it: the dump is not the database", s.kind, s.value)
			}
		}
	}
	kinds := map[string]int{}
	for _, s := range h.secrets {
		kinds[strings.SplitN(s.kind, ":", 2)[0]]++
	}
	for _, k := range []string{"verification code", "forced code", "generated code", "TOTP secret", "TOTP code", "API client token",
		"password", "ID token", "refresh token", "recovery code", "OTT", "anti-phishing code", "registration code", "channel code"} {
		if kinds[k] == 0 {
			t.Fatalf("no %s was collected (%v)", k, kinds)
		}
	}
}

// ---- delivery: a snapshot before each ----

var generatedCode = regexp.MustCompile(`<<(.+?)>>`)

// deliverRaw snapshots the database while messages wait in the outbox,
// then delivers them.
func (h *dumpHunt) deliverRaw() []delivered {
	h.t.Helper()
	h.e.app.Accounts.Drain()
	h.n++
	h.snapshot(fmt.Sprintf("before delivery %d", h.n))
	return h.e.deliver()
}

// keep records every code in delivered messages.
func (h *dumpHunt) keep(msgs []delivered) {
	for _, m := range msgs {
		for _, c := range sixDigits.FindAllString(m.Body, -1) {
			h.add("code: in a message to "+m.To, c)
		}
		if g := generatedCode.FindStringSubmatch(m.Body); g != nil {
			h.add("generated code: to "+m.To, g[1])
		}
	}
}

func (h *dumpHunt) deliver() []delivered {
	h.t.Helper()
	msgs := h.deliverRaw()
	h.keep(msgs)
	return msgs
}

// codeFor delivers and returns the 6-digit code sent to `to`, recorded as kind.
func (h *dumpHunt) codeFor(to, kind string) string {
	h.t.Helper()
	msgs := h.deliverRaw()
	code := ""
	for _, m := range msgs {
		if m.To == to {
			if c := sixDigits.FindString(m.Body); c != "" {
				code = c
			}
		}
	}
	if code == "" {
		h.t.Fatalf("no code was delivered to %s: %+v", to, msgs)
	}
	h.add(kind, code)
	h.keep(msgs)
	return code
}

// ---- users ----

// dumpUser is a user whose tokens are recorded and kept fresh.
type dumpUser struct {
	*user
	h  *dumpHunt
	at time.Time // when the ID token was issued
}

func (u *dumpUser) take(r *response) {
	u.user.take(r)
	u.at = u.e.clock.Now()
	u.h.addIDToken("ID token: of "+u.email, u.idToken)
	u.h.addPrefixed("refresh token: of "+u.email, u.refreshToken, "rt_")
}

func (u *dumpUser) refresh() {
	u.take(u.e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(u.e.t, 200))
}

// call is user.call with an ID token refreshed before it would expire.
func (u *dumpUser) call(method, path string, body any, extra ...string) *response {
	if u.e.clock.Now().Sub(u.at) > 10*time.Minute {
		u.refresh()
	}
	return u.user.call(method, path, body, extra...)
}

func (u *dumpUser) setPassword(kind, pw string) {
	u.password = pw
	u.h.add("password: "+kind, pw)
}

// register signs up and confirms with the emailed code.
func (h *dumpHunt) register(email, pw string) *dumpUser {
	t := h.t
	t.Helper()
	u := &dumpUser{user: &user{e: h.e, email: email}, h: h}
	u.setPassword("registration", pw)
	pid := h.e.doWith("POST", "/auth/register", map[string]any{"email": email, "password": pw}, nil).want(t, 202).str("processingId")
	code := h.codeFor(email, "registration code: "+email)
	u.take(h.e.doWith("POST", "/auth/register/confirm", map[string]any{"email": email, "code": code, "processingId": pid}, nil).want(t, 200))
	return u
}

// mfaLogin logs in with the password and returns the processingId.
func (u *dumpUser) mfaLogin() string {
	r := u.login(u.e.t).want(u.e.t, 200)
	if r.body["mfaRequired"] != true || r.str("processingId") == "" {
		u.e.t.Fatalf("no MFA login: %s", r.raw)
	}
	return r.str("processingId")
}

func (u *dumpUser) finish(pid, method, code string) {
	u.take(u.e.doWith("POST", "/auth/login/mfa", map[string]any{"processingId": pid, "method": method, "code": code}, nil).want(u.e.t, 200))
}

// totp returns the current code of an authenticator secret, on a step not
// used before.
func (h *dumpHunt) totp(secret string) string {
	h.e.clock.Advance(31 * time.Second)
	c := totpCode(secret, h.e.clock.Now())
	h.add("TOTP code", c)
	return c
}

// cooldown waits out the one-send-per-30-s limit of one-time tokens.
func (h *dumpHunt) cooldown() { h.e.clock.Advance(31 * time.Second) }

// ---- the flows ----

// verificationFlows drives the verification API: email and phone codes
// (generated, long, forced), resend, delete, google_auth.
func (h *dumpHunt) verificationFlows() {
	t, e := h.t, h.e
	h.addPrefixed("API client token", e.token, "tsk_")
	template := map[string]any{"body": "Your code: <<{{{CODE}}}>>"}
	initiate := func(method string, body map[string]any) string {
		t.Helper()
		id := e.do("POST", "/methods/"+method+"/actions/initiate", body).want(t, 200).str("verificationId")
		if id == "" {
			t.Fatalf("no verificationId from initiate %v", body)
		}
		return id
	}
	validate := func(method, id, code string) {
		t.Helper()
		e.do("POST", "/methods/"+method+"/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
	}

	const forced, forcedDigits = "Frc7Qx2Lm9Zp", "73019468"
	h.add("forced code: email", forced)
	h.add("forced code: phone, digits", forcedDigits)
	forcedID := initiate("email", map[string]any{"consumer": "v1@example.com", "issuer": "Acme", "policy": map[string]any{"forcedCode": forced}})
	initiate("phone", map[string]any{"consumer": "+14155552673", "policy": map[string]any{"forcedCode": forcedDigits}}) // left waiting, with its resend copy
	longID := initiate("email", map[string]any{"consumer": "v3@example.com", "template": template, "generateCode": map[string]any{"length": 24, "symbolSet": []string{"alphas", "ALPHAS"}}})
	hugeID := initiate("email", map[string]any{"consumer": "v4@example.com", "template": template, "generateCode": map[string]any{"length": 128, "symbolSet": []string{"DIGITS", "alphas", "ALPHAS", "SYMBOLS", ".:"}}})
	emailID := initiate("email", map[string]any{"consumer": "v5@example.com", "issuer": "Acme", "payload": map[string]any{"order": 42}})
	phoneID := initiate("phone", map[string]any{"consumer": "+14155552674", "issuer": "Acme"})

	msgs := h.deliverRaw()
	// The first snapshot before a delivery had the messages waiting.
	waiting := 0
	for _, c := range h.snaps[len(h.snaps)-1].cells {
		if c.where == "table outbox, column sealed" && len(c.b) > 0 {
			waiting++
		}
	}
	if waiting < 6 {
		t.Fatalf("before the first delivery %d messages waited in the outbox, want 6: the before-delivery dump shows nothing", waiting)
	}
	codes := map[string]string{}
	for _, m := range msgs {
		if g := generatedCode.FindStringSubmatch(m.Body); g != nil {
			codes[m.To] = g[1]
		} else if c := sixDigits.FindString(m.Body); c != "" {
			codes[m.To] = c
		}
	}
	if len(codes["v3@example.com"]) != 24 || len(codes["v4@example.com"]) != 128 {
		t.Fatalf("did not read the generated codes from %+v", msgs)
	}
	h.add("generated code: 24 letters", codes["v3@example.com"])
	h.add("generated code: 128 characters", codes["v4@example.com"])
	h.add("verification code: email", codes["v5@example.com"])
	h.add("verification code: phone", codes["+14155552674"])
	h.keep(msgs)
	validate("email", forcedID, forced)
	validate("email", longID, codes["v3@example.com"])
	validate("email", emailID, codes["v5@example.com"])
	validate("phone", phoneID, codes["+14155552674"])

	// A resend of the long code, which stays waiting for validation.
	e.clock.Advance(31 * time.Second)
	e.do("POST", "/methods/email/verifiers/"+hugeID+"/actions/resend", nil).want(t, 200)
	if again := h.deliver(); len(again) != 1 || !strings.Contains(again[0].Body, codes["v4@example.com"]) {
		t.Fatalf("the resend delivered %+v", again)
	}
	e.do("GET", "/methods/email/verifiers/"+hugeID, nil).want(t, 200)

	// An invalidated verification.
	goneID := initiate("email", map[string]any{"consumer": "v7@example.com"})
	h.codeFor("v7@example.com", "verification code: deleted")
	e.do("DELETE", "/methods/email/verifiers/"+goneID, nil).want(t, 200)

	// google_auth: a kept secret, a removed one, and a temporary one
	// replaced before its first code.
	ga := func(consumer string) (string, string) {
		t.Helper()
		r := e.do("POST", "/methods/google_auth/actions/initiate", map[string]any{"consumer": consumer, "issuer": "Acme"}).want(t, 200)
		secret := ""
		if uri := r.str("totpUri"); uri != "" {
			secret = totpSecret(t, uri, consumer)
			h.addTOTPSecret("TOTP secret: google_auth "+consumer, secret)
		}
		return r.str("verificationId"), secret
	}
	id, kept := ga("ga1@example.com")
	validate("google_auth", id, h.totp(kept))
	id, again := ga("ga1@example.com")
	if again != "" {
		t.Fatal("a verified google_auth secret was issued anew")
	}
	validate("google_auth", id, h.totp(kept))
	id, removed := ga("ga2@example.com")
	e.do("POST", "/methods/google_auth/verifiers/"+id+"/actions/validate", map[string]any{"code": h.totp(removed), "removeSecret": true}).want(t, 200)
	ga("ga3@example.com")
	if _, second := ga("ga3@example.com"); second == "" {
		t.Fatal("a new initiate before the first code did not issue a new secret")
	}
}

// accountFlows drives the accounts API and every one-time-token flow.
func (h *dumpHunt) accountFlows() {
	t, e := h.t, h.e
	noAuth := func(path string, body any) *response { return e.doWith("POST", path, body, nil) }

	// ---- ana: refresh, password change, TOTP, recovery codes, MFA
	// logins of every kind, SMS, anti-phishing, key recovery, MFA
	// disabling, password recovery ----
	ana := h.register("ana@example.com", "ana's first password")
	old := ana.refreshToken
	ana.refresh()
	successor := ana.refreshToken
	// Within the grace a spent token returns the same successor, kept
	// encrypted meanwhile.
	if r := noAuth("/auth/login/refresh", map[string]any{"refreshToken": old}).want(t, 200); r.str("refreshToken") != successor {
		t.Fatalf("the grace answered another successor: %s", r.raw)
	} else {
		ana.take(r)
	}
	ana.call("POST", "/auth/password", map[string]any{"oldPassword": ana.password, "newPassword": "ana's second password"}).want(t, 200)
	ana.setPassword("changed", "ana's second password")
	// A registration of a taken address: its password is typed too.
	h.add("password: registration of a taken address", "a squatter's password")
	noAuth("/auth/register", map[string]any{"email": "ana@example.com", "password": "a squatter's password"}).want(t, 202)
	h.deliver()

	enrol := func(u *dumpUser) string {
		t.Helper()
		r := u.call("POST", "/auth/otp/methods/totp", nil).want(t, 200)
		s := totpSecret(t, r.str("totpUri"), u.email)
		h.addTOTPSecret("TOTP secret: enrolment of "+u.email, s)
		return s
	}
	enrol(ana) // temporary, replaced by the next
	secret := enrol(ana)
	on := ana.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", h.totp(secret)).want(t, 200)
	h.addRecoveryCodes("recovery code: first set", on)
	regen := ana.call("POST", "/auth/mfa/recovery-codes", nil, "x-otp", h.totp(secret)).want(t, 200)
	second := h.addRecoveryCodes("recovery code: regenerated", regen)

	ana.finish(ana.mfaLogin(), "totp", h.totp(secret))
	ana.finish(ana.mfaLogin(), "recovery_code", strings.ToUpper(second[0]))
	pid := ana.mfaLogin()
	noAuth("/api/v1/token/login", map[string]any{"destination": "EMAIL", "processingId": pid}).want(t, 422) // never a second factor

	// Texted codes as a second factor.
	ana.call("POST", "/auth/otp/methods/sms", map[string]any{"phone": "(415) 555-2671", "country": "US"}).want(t, 200)
	ana.call("POST", "/auth/otp/code", map[string]any{"channel": "sms"}, "x-otp", h.codeFor("+14155552671", "channel code: sms enrolment")).want(t, 200)
	pid = ana.mfaLogin()
	noAuth("/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}).want(t, 200)
	ana.finish(pid, "sms", h.codeFor("+14155552671", "OTT: login by SMS"))
	h.cooldown()
	ana.call("GET", "/auth/otp/code?method=sms", nil).want(t, 200)
	h.codeFor("+14155552671", "channel code: sms")
	ana.call("GET", "/auth/otp/code?method=email", nil).want(t, 200)
	h.codeFor(ana.email, "channel code: email")

	// The anti-phishing code, added then changed; emails show it from then on.
	ana.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	h.add("anti-phishing code: added", "ana-blue-otter")
	ana.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": h.codeFor(ana.email, "OTT: anti-phishing adding"), "antiPhishingCode": "ana-blue-otter"}).want(t, 200)
	h.cooldown()
	ana.call("POST", "/api/v1/token/antiPhishing/changing", nil).want(t, 200)
	h.add("anti-phishing code: changed", "ana green heron!")
	ana.call("POST", "/api/v1/antiPhishing/changing", map[string]any{"oneTimeToken": h.codeFor(ana.email, "OTT: anti-phishing changing"), "antiPhishingCode": "ana green heron!"}).want(t, 200)

	// Key recovery: the phone is lost.
	pid = ana.mfaLogin()
	noAuth("/api/v1/token/userKeys/recovery/verification", map[string]any{"keyType": "PHONE_NUMBER", "destination": "EMAIL", "processingId": pid}).want(t, 200)
	check := h.codeFor(ana.email, "OTT: key recovery, verification")
	noAuth("/api/v1/token/userKeys/recovery/newKey", map[string]any{"destination": "+14155552672", "processingId": pid}).want(t, 200)
	fresh := h.codeFor("+14155552672", "OTT: key recovery, new key")
	noAuth("/api/v1/userKeys/recovery", map[string]any{"processingId": pid, "keyType": "PHONE_NUMBER", "verificationToken": check, "newKey": "+14155552672", "newKeyToken": fresh,
		"mfaMethod": "totp", "mfaCode": h.totp(secret)}).want(t, 200)
	h.deliver()
	pid = ana.mfaLogin()
	noAuth("/api/v1/token/login", map[string]any{"destination": "PHONE_NUMBER", "processingId": pid}).want(t, 200)
	ana.finish(pid, "sms", h.codeFor("+14155552672", "OTT: login by SMS to the recovered phone"))

	// MFA disabling: texted codes, then MFA altogether.
	ana.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "PHONE_NUMBER"}).want(t, 200)
	ana.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "PHONE_NUMBER", "oneTimeToken": h.codeFor("+14155552672", "OTT: MFA disabling by SMS")}).want(t, 200)
	ana.finish(ana.mfaLogin(), "totp", h.totp(secret)) // removing the authenticator app takes a session that used it
	ana.call("POST", "/api/v1/token/mfa/disabling", map[string]any{"destination": "EMAIL"}).want(t, 200)
	ana.call("POST", "/api/v1/mfa/disabling", map[string]any{"destination": "EMAIL", "oneTimeToken": h.codeFor(ana.email, "OTT: MFA disabling by email")}).want(t, 200)
	h.deliver()

	// Password recovery by email.
	recoveryPID := noAuth("/api/v1/token/password/recovery", map[string]any{"email": ana.email, "destination": "EMAIL"}).want(t, 200).str("processingId")
	ott := h.codeFor(ana.email, "OTT: password recovery by email")
	h.add("password: reset by email", "ana's third password")
	noAuth("/api/v1/password/recovery", map[string]any{"email": ana.email, "destination": "EMAIL", "processingId": recoveryPID, "oneTimeToken": ott, "newPassword": "ana's third password"}).want(t, 200)
	ana.password = "ana's third password"
	h.deliver()
	ana.take(ana.login(t).want(t, 200))
	ana.call("GET", "/auth/sessions", nil).want(t, 200)
	ana.call("POST", "/auth/logout", nil).want(t, 200)

	// ---- kai: a second registration confirmed, phone key
	// added, password recovery by SMS, phone changed and removed, email
	// changed ----
	h.add("password: an unconfirmed registration", "kai's squatted password")
	noAuth("/auth/register", map[string]any{"email": "kai@example.com", "password": "kai's squatted password"}).want(t, 202)
	h.codeFor("kai@example.com", "registration code: unconfirmed")
	e.clock.Advance(time.Minute)
	kai := h.register("kai@example.com", "kai's first password")
	kai.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155552675", nil).want(t, 200)
	kai.call("POST", "/api/v1/userKeys/adding", map[string]any{"newKey": "+14155552675", "oneTimeToken": h.codeFor("+14155552675", "OTT: key adding")}).want(t, 200)

	recoveryPID2 := noAuth("/api/v1/token/password/recovery", map[string]any{"email": kai.email, "destination": "PHONE_NUMBER"}).want(t, 200).str("processingId")
	ott = h.codeFor("+14155552675", "OTT: password recovery by SMS")
	h.add("password: reset by SMS", "kai's second password")
	noAuth("/api/v1/password/recovery", map[string]any{"email": kai.email, "destination": "PHONE_NUMBER", "processingId": recoveryPID2, "oneTimeToken": ott, "newPassword": "kai's second password"}).want(t, 200)
	kai.password = "kai's second password"
	h.deliver()
	kai.take(kai.login(t).want(t, 200))

	kai.call("POST", "/api/v1/token/userKeys/changing?keyType=PHONE_NUMBER", nil).want(t, 200)
	first := h.codeFor("+14155552675", "OTT: phone changing, current key")
	kai.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "+14155552676"}).want(t, 200)
	kai.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "+14155552676", "oneTimeToken": h.codeFor("+14155552676", "OTT: phone changing, new key")}).want(t, 200)
	h.deliver()
	kai.call("POST", "/api/v1/token/userKeys/removing?keyType=PHONE_NUMBER", nil).want(t, 200)
	kai.call("POST", "/api/v1/userKeys/removing", map[string]any{"keyType": "PHONE_NUMBER", "oneTimeToken": h.codeFor("+14155552676", "OTT: phone removing")}).want(t, 200)
	h.deliver()
	kai.call("POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil).want(t, 200)
	first = h.codeFor("kai@example.com", "OTT: email changing, current key")
	kai.call("POST", "/api/v1/token/userKeys/changing/newKey", map[string]any{"oneTimeToken": first, "newUserKey": "kai.new@example.com"}).want(t, 200)
	kai.call("POST", "/api/v1/userKeys/changing", map[string]any{"newUserKey": "kai.new@example.com", "oneTimeToken": h.codeFor("kai.new@example.com", "OTT: email changing, new key")}).want(t, 200)
	kai.email = "kai.new@example.com"
	h.deliver()
	kai.take(kai.login(t).want(t, 200))

	// ---- dora: sessions, an authenticator removed with a code from it ----
	dora := h.register("dora@example.com", "dora's only password")
	other := &dumpUser{user: &user{e: e, email: dora.email, password: dora.password}, h: h}
	other.take(other.login(t).want(t, 200))
	var otherID string
	for _, s := range dora.call("GET", "/auth/sessions", nil).want(t, 200).body["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] == false {
			otherID = m["id"].(string)
		}
	}
	dora.call("DELETE", "/auth/sessions/"+otherID, nil).want(t, 200)
	secret = enrol(dora)
	h.addRecoveryCodes("recovery code: dora", dora.call("POST", "/auth/otp/code", map[string]any{"channel": "totp"}, "x-otp", h.totp(secret)).want(t, 200))
	dora.finish(dora.mfaLogin(), "totp", h.totp(secret))
	dora.call("DELETE", "/auth/otp/methods/totp", nil, "x-otp", h.totp(secret)).want(t, 200)
	dora.take(dora.login(t).want(t, 200))
}
