package account

import (
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// UserView is the user object of the accounts API. Email and phone are
// obfuscated: the API never hands out a full address.
type UserView struct {
	ID                     string             `json:"id"`
	Email                  string             `json:"email"`
	HasValidatedEmail      bool               `json:"hasValidatedEmail"`
	EmailVerificationDate  *time.Time         `json:"emailVerificationDate,omitempty"`
	HasValidatedSecret     bool               `json:"hasValidatedSecret"`
	SecretVerificationDate *time.Time         `json:"secretVerificationDate,omitempty"`
	PhoneNumber            string             `json:"phoneNumber,omitempty"`
	HasValidatedPhone      bool               `json:"hasValidatedPhone"`
	PhoneVerificationDate  *time.Time         `json:"phoneVerificationDate,omitempty"`
	LastLoggedDate         time.Time          `json:"lastLoggedDate"`
	Status                 tessera.UserStatus `json:"status"`
	LastLoggedDevice       string             `json:"lastLoggedDevice"`
	LastPasswordChangeDate time.Time          `json:"lastPasswordChangeDate"`
	MFAEnabled             bool               `json:"mfaEnabled"`
	SMSMFAEnabled          bool               `json:"smsMfaEnabled"`
	HasAntiPhishingCode    bool               `json:"hasAntiPhishingCode"`
	// Locale is the language chosen for the user's messages; absent when
	// they follow each request's Accept-Language.
	Locale string `json:"locale,omitempty"`
}

// View returns u as the API shows it. A user who never logged in shows the
// registration time as lastLoggedDate (the field is required).
func View(u *tessera.User) *UserView {
	v := &UserView{
		ID:                     u.ID,
		Email:                  ObfuscateEmail(u.Email),
		HasValidatedEmail:      !u.EmailVerifiedAt.IsZero(),
		EmailVerificationDate:  timePtr(u.EmailVerifiedAt),
		HasValidatedSecret:     !u.TOTPVerifiedAt.IsZero(),
		SecretVerificationDate: timePtr(u.TOTPVerifiedAt),
		PhoneNumber:            ObfuscatePhone(u.Phone),
		HasValidatedPhone:      !u.PhoneVerifiedAt.IsZero(),
		PhoneVerificationDate:  timePtr(u.PhoneVerifiedAt),
		LastLoggedDate:         u.LastLoginAt,
		Status:                 u.Status,
		LastLoggedDevice:       u.LastLoginDevice,
		LastPasswordChangeDate: u.PasswordChanged,
		MFAEnabled:             policy.Of(u, 0).MFA(),
		SMSMFAEnabled:          !u.SMSMFAAt.IsZero(),
		HasAntiPhishingCode:    u.AntiPhishingSealed != nil,
		Locale:                 u.Locale,
	}
	if v.LastLoggedDate.IsZero() {
		v.LastLoggedDate = u.CreatedAt
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// ObfuscateEmail keeps the first and last character of the local part and
// the domain: "alice@example.com" → "a***e@example.com".
func ObfuscateEmail(email string) string { return verify.MaskEmail(email) }

// ObfuscatePhone keeps the "+", the first two digits and the last two of
// an E.164 number: "+14155552671" → "+14*******71".
func ObfuscatePhone(phone string) string { return verify.MaskPhone(phone) }
