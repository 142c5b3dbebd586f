package account

import (
	"context"
	"slices"
	"strings"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
	"github.com/tessera-id/tessera/internal/verify"
)

// Factor is one way to prove the second step of a flow (a login, a
// step-up, a key recovery). The policy says which factors a flow accepts;
// a Factor only knows how to prove itself. Passkeys will be one more.
type Factor interface {
	// Method is the factor's amr name (policy.TOTP, policy.SMS, ...).
	Method() string
	// Begin prepares a proof within flow fl: texts a code, opens the
	// authenticator app's check, asks a passkey to sign a challenge. It
	// returns what the client needs (a *CodeSent, *PasskeyOptions), or nil.
	Begin(ctx context.Context, u *tessera.User, fl *tessera.Flow) (any, error)
	// Verify checks the proof, once, within flow fl: the code the user
	// typed, or a passkey's assertion (the PublicKeyCredential JSON).
	Verify(ctx context.Context, u *tessera.User, fl *tessera.Flow, proof string) error
	// sends reports whether Begin sends a message, so the client asks for
	// it (POST /api/v1/token/login); other factors begin with the flow.
	sends() bool
}

// factor returns the Factor of an amr method; one that cannot prove
// anything for an unknown method.
func (s *Service) factor(method string) Factor {
	switch method {
	case policy.TOTP:
		return totpFactor{s}
	case policy.SMS:
		return smsFactor{s}
	case policy.RecoveryCode:
		return recoveryCodeFactor{s}
	case policy.Passkey:
		return passkeyFactor{s}
	}
	return noFactor{}
}

// The second factors as the API names them (a challenge's "methods", the
// "method" of POST /auth/login/mfa), and the amr method of each.
const (
	FactorTOTP     = "totp"
	FactorSMS      = "sms"
	FactorEmail    = "email"
	FactorRecovery = "recovery_code"
	FactorPasskey  = "passkey"
)

var amrOfFactor = map[string]string{FactorTOTP: policy.TOTP, FactorSMS: policy.SMS, FactorEmail: policy.Email, FactorRecovery: policy.RecoveryCode,
	FactorPasskey: policy.Passkey}

// factorNames turns amr methods into the API's names, sorted.
func factorNames(methods []string) []string {
	out := []string{}
	for _, m := range methods {
		for name, amr := range amrOfFactor {
			if amr == m {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// totpFactor is a code from an enrolled authenticator app. Each flow has
// its own google_auth verification, so codes get the engine's attempt cap
// and replay protection.
type totpFactor struct{ s *Service }

func (totpFactor) Method() string { return policy.TOTP }
func (totpFactor) sends() bool    { return false }

func (f totpFactor) Begin(ctx context.Context, u *tessera.User, fl *tessera.Flow) (any, error) {
	_, err := f.s.Engine.Initiate(ctx, Owner, tessera.MethodGoogleAuth, &verify.InitiateRequest{
		Consumer: u.ID, Issuer: f.s.ServiceName,
		Policy: verify.Policy{ExpiredOn: hms(f.s.CodeTTL), MaxAttempts: challengeAttempts, ForcedVerificationID: verificationID(u.ID, "login-totp:"+fl.ID)},
	})
	return nil, err
}

func (f totpFactor) Verify(ctx context.Context, u *tessera.User, fl *tessera.Flow, code string) error {
	_, err := f.s.Engine.Validate(ctx, Owner, tessera.MethodGoogleAuth, verificationID(u.ID, "login-totp:"+fl.ID), strings.TrimSpace(code), false)
	return codeError(err)
}

// smsFactor is a code texted to the phone the user turned on as a factor,
// bound to the flow.
type smsFactor struct{ s *Service }

func (smsFactor) Method() string { return policy.SMS }
func (smsFactor) sends() bool    { return true }

func (f smsFactor) Begin(ctx context.Context, u *tessera.User, fl *tessera.Flow) (any, error) {
	c := codeSpec{purpose: "login", extra: fl.ID}
	if fl.Type == tessera.FlowReauthentication {
		c.message = "step_up" // the same factor, but the user is told what for
	}
	return f.s.send(ctx, u, tessera.MethodPhone, u.Phone, c)
}

func (f smsFactor) Verify(ctx context.Context, u *tessera.User, fl *tessera.Flow, code string) error {
	return f.s.checkCode(ctx, u, tessera.MethodPhone, u.Phone, "login", fl.ID, code)
}

// recoveryCodeFactor is one of the user's single-use recovery codes.
type recoveryCodeFactor struct{ s *Service }

func (recoveryCodeFactor) Method() string { return policy.RecoveryCode }
func (recoveryCodeFactor) sends() bool    { return false }

func (recoveryCodeFactor) Begin(context.Context, *tessera.User, *tessera.Flow) (any, error) {
	return nil, nil
}

func (f recoveryCodeFactor) Verify(ctx context.Context, u *tessera.User, _ *tessera.Flow, code string) error {
	var err error
	for _, h := range f.s.recoveryHashes(u.ID, code) {
		if err = f.s.Store.UseRecoveryCode(ctx, u.ID, h, f.s.now()); tessera.ErrorCode(err) != tessera.ENOTFOUND {
			break
		}
	}
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return tessera.Errorf(tessera.EINVALIDCODE, "Invalid code")
	}
	return err
}

// noFactor stands for a method that is no second factor (an emailed
// code); the policy refuses it before it gets here.
type noFactor struct{}

func (noFactor) Method() string { return "" }
func (noFactor) sends() bool    { return false }
func (noFactor) Begin(context.Context, *tessera.User, *tessera.Flow) (any, error) {
	return nil, notASecondFactor()
}
func (noFactor) Verify(context.Context, *tessera.User, *tessera.Flow, string) error {
	return notASecondFactor()
}

func notASecondFactor() error {
	return tessera.Invalid(tessera.FieldError{Path: "method", Error: "is not a second factor"})
}
