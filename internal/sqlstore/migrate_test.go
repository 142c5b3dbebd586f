package sqlstore_test

import (
	"bytes"
	"context"
	"database/sql"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/sqlstore"
	"github.com/tessera-id/tessera/internal/storetest"
)

// TestMigrationToCredentials builds a database at schema 6, where a user's
// factors were columns of users, stores users the old way, and opens it
// with this binary: migration 7 must carry every fact into credential rows
// and User must read the same as before.
func TestMigrationToCredentials(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "tessera.db")
		raw, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlstore.MigrateTo(context.Background(), raw, "sqlite", 6); err != nil {
			t.Fatal(err)
		}
		insertOldUsers(t, raw, func(q string) string { return q })
		raw.Close()
		db, err := sqlstore.OpenSQLite(context.Background(), path, false)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkMigratedUsers(t, db)
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := storetest.PostgresSchema(t)
		raw, err := sql.Open("pgx", dsn)
		if err != nil {
			t.Fatal(err)
		}
		if err := sqlstore.MigrateTo(context.Background(), raw, "postgres", 6); err != nil {
			t.Fatal(err)
		}
		insertOldUsers(t, raw, func(q string) string {
			for n := 1; strings.Contains(q, "?"); n++ {
				q = strings.Replace(q, "?", "$"+strconv.Itoa(n), 1)
			}
			return q
		})
		raw.Close()
		db, err := sqlstore.OpenPostgres(context.Background(), dsn, 4)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkMigratedUsers(t, db)
	})
}

var m0 = time.UnixMilli(1_800_000_000_000).UTC()

func at(minutes int) time.Time { return m0.Add(time.Duration(minutes) * time.Minute) }

const oldHash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"

// oldUsers are users as schema 6 stored them.
var oldUsers = []*tessera.User{
	// Every factor: a verified email, a phone that is a second factor
	// (switched on after it was verified), an authenticator app.
	{ID: "full", Email: "Alice@example.com", EmailVerifiedAt: at(1), Phone: "+41791234567", PhoneCountry: "CH", PhoneVerifiedAt: at(2),
		SMSMFAAt: at(5), PasswordHash: oldHash, PasswordChanged: at(3), Status: tessera.UserActive, TOTPVerifiedAt: at(4),
		AntiPhishingSealed: []byte("sealed"), LastLoginAt: at(6), LastLoginDevice: "Mozilla/5.0", FailedLogins: 2, LockedUntil: at(7), CreatedAt: m0},
	// A disabled account with a password and its address, nothing else.
	{ID: "bare", Email: "bo@example.com", EmailVerifiedAt: at(1), PasswordHash: oldHash, PasswordChanged: m0,
		Status: tessera.UserDisabled, CreatedAt: m0},
	// A verified phone that is only a user key, and an unverified one.
	{ID: "key", Email: "cy@example.com", EmailVerifiedAt: at(1), Phone: "+15551230001", PhoneCountry: "US", PhoneVerifiedAt: at(2),
		PasswordHash: oldHash, PasswordChanged: m0, Status: tessera.UserActive, CreatedAt: m0},
	{ID: "pending", Email: "di@example.com", EmailVerifiedAt: at(1), Phone: "+15551230002", PhoneCountry: "US",
		PasswordHash: oldHash, PasswordChanged: m0, Status: tessera.UserActive, CreatedAt: m0},
}

func msOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

func insertOldUsers(t *testing.T, db *sql.DB, bind func(string) string) {
	t.Helper()
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(bind(q), args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, u := range oldUsers {
		locked := int64(0)
		if !u.LockedUntil.IsZero() {
			locked = u.LockedUntil.UnixMilli()
		}
		exec(`INSERT INTO users (id, email, email_key, email_verified_at, phone, phone_country, phone_verified_at, password_hash, password_changed_at,
			status, totp_verified_at, last_login_at, last_login_device, failed_logins, locked_until, created_at, sms_mfa_at, anti_phishing_sealed)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			u.ID, u.Email, strings.ToLower(u.Email), msOrNull(u.EmailVerifiedAt), u.Phone, u.PhoneCountry, msOrNull(u.PhoneVerifiedAt),
			u.PasswordHash, u.PasswordChanged.UnixMilli(), string(u.Status), msOrNull(u.TOTPVerifiedAt), msOrNull(u.LastLoginAt),
			u.LastLoginDevice, u.FailedLogins, locked, u.CreatedAt.UnixMilli(), msOrNull(u.SMSMFAAt), u.AntiPhishingSealed)
	}
	// Recovery codes of "full": two issued, one used; and a code of an
	// account that is gone.
	exec(`INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, ?)`, "full", []byte("h1"), at(8).UnixMilli(), at(9).UnixMilli())
	exec(`INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, NULL)`, "full", []byte("h2"), at(8).UnixMilli())
	exec(`INSERT INTO recovery_codes (user_id, hash, created_at, used_at) VALUES (?, ?, ?, NULL)`, "ghost", []byte("h3"), at(8).UnixMilli())
}

type wantCred struct {
	kind       tessera.CredentialKind
	identifier string
	verified   time.Time
	factor     bool
	created    time.Time
	used       time.Time
}

func checkMigratedUsers(t *testing.T, db *sqlstore.DB) {
	t.Helper()
	ctx := context.Background()
	for _, want := range oldUsers {
		for _, get := range []func() (*tessera.User, error){
			func() (*tessera.User, error) { return db.User(ctx, want.ID) },
			func() (*tessera.User, error) { return db.UserByEmail(ctx, strings.ToUpper(want.Email)) },
		} {
			got, err := get()
			if err != nil {
				t.Fatalf("%s after the migration: %v", want.ID, err)
			}
			if got.ID != want.ID || got.Email != want.Email || !got.EmailVerifiedAt.Equal(want.EmailVerifiedAt) ||
				got.Phone != want.Phone || got.PhoneCountry != want.PhoneCountry || !got.PhoneVerifiedAt.Equal(want.PhoneVerifiedAt) ||
				!got.SMSMFAAt.Equal(want.SMSMFAAt) || got.PasswordHash != want.PasswordHash || !got.PasswordChanged.Equal(want.PasswordChanged) ||
				got.Status != want.Status || !got.TOTPVerifiedAt.Equal(want.TOTPVerifiedAt) || !bytes.Equal(got.AntiPhishingSealed, want.AntiPhishingSealed) ||
				!got.LastLoginAt.Equal(want.LastLoginAt) || got.LastLoginDevice != want.LastLoginDevice || got.FailedLogins != want.FailedLogins ||
				!got.LockedUntil.Equal(want.LockedUntil) || !got.CreatedAt.Equal(want.CreatedAt) {
				t.Fatalf("%s after the migration:\n got %+v\nwant %+v", want.ID, got, want)
			}
		}
	}

	creds := map[string][]wantCred{
		"full": {
			{kind: tessera.CredentialEmail, identifier: "Alice@example.com", verified: at(1), created: m0},
			{kind: tessera.CredentialPhone, identifier: "+41791234567", verified: at(2), factor: true, created: at(2)},
			{kind: tessera.CredentialPassword, verified: at(3), created: at(3)},
			{kind: tessera.CredentialTOTP, verified: at(4), factor: true, created: at(4)},
			{kind: tessera.CredentialRecoveryCodes, verified: at(8), created: at(8), used: at(9)},
		},
		"bare": {
			{kind: tessera.CredentialEmail, identifier: "bo@example.com", verified: at(1), created: m0},
			{kind: tessera.CredentialPassword, verified: m0, created: m0},
		},
		"key": {
			{kind: tessera.CredentialEmail, identifier: "cy@example.com", verified: at(1), created: m0},
			{kind: tessera.CredentialPassword, verified: m0, created: m0},
			{kind: tessera.CredentialPhone, identifier: "+15551230001", verified: at(2), created: at(2)},
		},
		"pending": {
			{kind: tessera.CredentialEmail, identifier: "di@example.com", verified: at(1), created: m0},
			{kind: tessera.CredentialPassword, verified: m0, created: m0},
			{kind: tessera.CredentialPhone, identifier: "+15551230002", created: m0},
		},
		"ghost": nil,
	}
	for id, want := range creds {
		got, err := db.Credentials(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var have []wantCred
		for _, c := range got {
			have = append(have, wantCred{c.Kind, c.Identifier, c.VerifiedAt, c.SecondFactor, c.CreatedAt, c.LastUsedAt})
		}
		if !slices.EqualFunc(have, want, func(a, b wantCred) bool {
			return a.kind == b.kind && a.identifier == b.identifier && a.verified.Equal(b.verified) && a.factor == b.factor &&
				a.created.Equal(b.created) && a.used.Equal(b.used)
		}) {
			t.Fatalf("credentials of %s after the migration:\n got %+v\nwant %+v", id, have, want)
		}
	}
	if n, err := db.RecoveryCodesLeft(ctx, "full"); err != nil || n != 1 {
		t.Fatalf("recovery codes left %d, %v; want 1", n, err)
	}

	// The address stays taken, case-insensitively, and the store goes on
	// working on the migrated rows.
	err := db.CreateUser(ctx, &tessera.User{ID: "new", Email: "ALICE@example.com", PasswordHash: oldHash, PasswordChanged: m0, Status: tessera.UserActive, CreatedAt: m0})
	if tessera.ErrorCode(err) != tessera.ECONFLICT {
		t.Fatalf("registering a migrated address: %v, want a conflict", err)
	}
	if err := db.SetSMSMFA(ctx, "full", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPhoneVerified(ctx, "pending", "+15551230002", at(10)); err != nil {
		t.Fatal(err)
	}
	if u, _ := db.User(ctx, "full"); u.SMSFactorOn() || !u.TOTPEnrolled() {
		t.Fatalf("after turning SMS off: %+v", u)
	}
	if u, _ := db.User(ctx, "pending"); !u.PhoneVerifiedAt.Equal(at(10)) || !u.SMSFactorOn() {
		t.Fatalf("after verifying the migrated phone: %+v", u)
	}
}
