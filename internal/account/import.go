package account

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nyaruka/phonenumbers"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// ImportRecord is one user to import: one line of a JSON-lines file, one
// element of the admin API's "users".
type ImportRecord struct {
	Email         string `json:"email"`
	EmailVerified bool   `json:"emailVerified,omitempty"`
	Phone         string `json:"phone,omitempty"` // E.164
	PhoneVerified bool   `json:"phoneVerified,omitempty"`
	// SMSMFA makes texted codes a second factor; it needs a verified phone.
	SMSMFA bool `json:"smsMfa,omitempty"`
	// PasswordHash is an encoded hash (see password.CheckImported), or
	// with PasswordSalt, Firebase's base64 passwordHash, checked with the
	// import's Firebase parameters.
	PasswordHash string     `json:"passwordHash,omitempty"`
	PasswordSalt string     `json:"passwordSalt,omitempty"`
	TOTPSecret   string     `json:"totpSecret,omitempty"` // base32
	CreatedAt    *time.Time `json:"createdAt,omitempty"`
	Disabled     bool       `json:"disabled,omitempty"`
}

// FirebaseParams are a Firebase project's password hash parameters (the
// console's "Password hash parameters"), for the records that carry a
// Firebase passwordHash and salt.
type FirebaseParams struct {
	SignerKey     string `json:"signerKey"`
	SaltSeparator string `json:"saltSeparator"`
	Rounds        int    `json:"rounds"`
	MemCost       int    `json:"memCost"`
}

// ImportResult is what became of one record.
type ImportResult struct {
	Line   int    `json:"line"` // 1-based: the file's line or the array's element
	Email  string `json:"email,omitempty"`
	Result string `json:"result"` // created, exists or invalid
	UserID string `json:"userId,omitempty"`
	// Field and Error say what was wrong with an invalid record; they never
	// quote a hash.
	Field string `json:"field,omitempty"`
	Error string `json:"error,omitempty"`
}

// Import results.
const (
	ImportCreated = "created"
	ImportExists  = "exists" // an account has the address: left as it is
	ImportInvalid = "invalid"
)

// ImportReport sums up an import.
type ImportReport struct {
	Created int            `json:"created"`
	Exists  int            `json:"exists"`
	Invalid int            `json:"invalid"`
	Results []ImportResult `json:"results"`
}

func (r *ImportReport) add(res ImportResult) {
	switch res.Result {
	case ImportCreated:
		r.Created++
	case ImportExists:
		r.Exists++
	default:
		r.Invalid++
	}
	r.Results = append(r.Results, res)
}

// MaxImportLine caps one line of an import file.
const MaxImportLine = 64 << 10

// ImportLines imports the users of a JSON-lines stream, one record per
// line (blank lines are skipped). A line that is not a record is reported
// as invalid; the others go on.
func (s *Service) ImportLines(ctx context.Context, admin policy.Admin, in io.Reader, fb *FirebaseParams, meta Meta) (*ImportReport, error) {
	if err := policy.MayAdminister(admin, policy.ImportUsers); err != nil {
		return nil, err
	}
	report := &ImportReport{Results: []ImportResult{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 4096), MaxImportLine)
	for line := 1; sc.Scan(); line++ {
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		var rec ImportRecord
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			report.add(ImportResult{Line: line, Result: ImportInvalid, Field: "line", Error: recordError(err)})
			continue
		}
		res, err := s.importOne(ctx, admin, rec, fb, meta)
		if err != nil {
			return report, err
		}
		res.Line = line
		report.add(res)
	}
	if err := sc.Err(); err != nil {
		return report, fmt.Errorf("read the import: %w", err)
	}
	return report, nil
}

// ImportUsers imports records (the admin API's array).
func (s *Service) ImportUsers(ctx context.Context, admin policy.Admin, records []ImportRecord, fb *FirebaseParams, meta Meta) (*ImportReport, error) {
	if err := policy.MayAdminister(admin, policy.ImportUsers); err != nil {
		return nil, err
	}
	report := &ImportReport{Results: []ImportResult{}}
	for i, rec := range records {
		res, err := s.importOne(ctx, admin, rec, fb, meta)
		if err != nil {
			return report, err
		}
		res.Line = i + 1
		report.add(res)
	}
	return report, nil
}

// recordError describes a line that is not a record, naming the field
// where it can, without quoting the line (it may hold a hash).
func recordError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return fmt.Sprintf("field %s must be %s", typeErr.Field, typeErr.Type.Kind())
	}
	if msg := err.Error(); strings.HasPrefix(msg, "json: unknown field ") {
		return "unknown field " + strings.TrimPrefix(msg, "json: unknown field ")
	}
	return "is not a JSON object with the import's fields"
}

// importOne imports one record, or says why not. Only a failure of the
// store is an error: a bad record is a result.
func (s *Service) importOne(ctx context.Context, admin policy.Admin, rec ImportRecord, fb *FirebaseParams, meta Meta) (ImportResult, error) {
	u, scheme, bad := s.importedUser(rec, fb)
	res := ImportResult{Email: strings.TrimSpace(rec.Email)}
	if bad != nil {
		res.Result, res.Field, res.Error = ImportInvalid, bad.Path, bad.Error
		return res, nil
	}
	res.Email = u.Email
	// Idempotent per address: an account that has it stays as it is,
	// so running an import again creates only what is missing.
	if _, err := s.Store.UserByEmail(ctx, u.Email); err == nil {
		res.Result = ImportExists
		return res, nil
	} else if tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return res, err
	}
	err := s.inTx(ctx, func(t *txn) error {
		if err := t.store.CreateUser(ctx, u); err != nil {
			return err
		}
		if rec.TOTPSecret == "" {
			return nil
		}
		return t.engine.ImportTOTPSecret(ctx, Owner, u.ID, rec.TOTPSecret)
	})
	switch tessera.ErrorCode(err) {
	case "":
	case tessera.ECONFLICT: // imported in parallel
		res.Result = ImportExists
		return res, nil
	default:
		return res, err
	}
	res.Result, res.UserID = ImportCreated, u.ID
	detail := "by " + admin.Name + "; password " + scheme
	if rec.TOTPSecret != "" {
		detail += "; authenticator app"
	}
	s.audit(ctx, tessera.AuditAdminUserImported, u, meta, detail)
	return res, nil
}

// importedUser builds the account a record describes, or names the field
// that is wrong. scheme names the password hash's scheme ("none").
func (s *Service) importedUser(rec ImportRecord, fb *FirebaseParams) (*tessera.User, string, *tessera.FieldError) {
	bad := func(path, msg string) (*tessera.User, string, *tessera.FieldError) {
		return nil, "", &tessera.FieldError{Path: path, Error: msg}
	}
	addr, err := verify.NormalizeEmail(strings.TrimSpace(rec.Email))
	if err != nil {
		return bad("email", err.Error())
	}
	now := s.now()
	created := now
	if rec.CreatedAt != nil {
		if rec.CreatedAt.After(now) {
			return bad("createdAt", "must not be in the future")
		}
		created = rec.CreatedAt.UTC()
	}
	// Imported accounts are active: the operator vouches for them, as for
	// tessera user create. An unverified address stays unverified.
	u := &tessera.User{ID: uuid.NewString(), Email: addr, Status: tessera.UserActive, CreatedAt: created, PasswordChanged: now}
	if rec.Disabled {
		u.Status = tessera.UserDisabled
	}
	if rec.EmailVerified {
		u.EmailVerifiedAt = now
	}
	if rec.Phone != "" {
		num, err := phonenumbers.Parse(strings.TrimSpace(rec.Phone), "")
		if err != nil || !phonenumbers.IsValidNumber(num) || !strings.HasPrefix(strings.TrimSpace(rec.Phone), "+") {
			return bad("phone", "must be a valid phone number in E.164 form, such as +14155552671")
		}
		u.Phone, u.PhoneCountry = phonenumbers.Format(num, phonenumbers.E164), phonenumbers.GetRegionCodeForNumber(num)
		if rec.PhoneVerified {
			u.PhoneVerifiedAt = now
		}
	} else if rec.PhoneVerified {
		return bad("phoneVerified", "needs a phone")
	}
	if rec.SMSMFA {
		if u.PhoneVerifiedAt.IsZero() {
			return bad("smsMfa", "needs a verified phone")
		}
		u.SMSMFAAt = now
	}
	scheme := "none"
	switch {
	case rec.PasswordSalt != "":
		if fb == nil {
			return bad("passwordSalt", "is Firebase's: give the project's password hash parameters (signer key, salt separator, rounds, mem cost)")
		}
		enc, err := password.FirebaseScrypt(rec.PasswordHash, rec.PasswordSalt, fb.SaltSeparator, fb.SignerKey, fb.Rounds, fb.MemCost)
		if err != nil {
			return bad("passwordHash", err.Error())
		}
		u.PasswordHash, scheme = enc, "firebase-scrypt"
	case rec.PasswordHash != "":
		if scheme, err = password.CheckImported(rec.PasswordHash); err != nil {
			return bad("passwordHash", err.Error())
		}
		u.PasswordHash = rec.PasswordHash
	}
	if rec.TOTPSecret != "" {
		if _, err := verify.NormalizeTOTPSecret(rec.TOTPSecret); err != nil {
			return bad("totpSecret", err.Error())
		}
		u.TOTPVerifiedAt = now
	}
	return u, scheme, nil
}
