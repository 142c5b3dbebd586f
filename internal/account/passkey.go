package account

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/policy"
)

// ---- passkeys (WebAuthn) ----
//
// go-webauthn does the ceremonies; this file keeps their challenges in
// flows (single use, bound to the flow, expiring, five tries), their
// results in the user's passkeys credential, and the rules: user
// verification always, discoverable keys, no attestation, a sign counter
// that goes backwards refuses the passkey for good.

// stateChallengeSent is the state of a passkey flow whose challenge went
// to the browser.
const stateChallengeSent = "challenge_sent"

// maxPasskeys bounds the passkeys of one user (each is a row's worth of
// JSON in the user's credential).
const maxPasskeys = 20

// PasskeyOptions is what a browser passes to navigator.credentials.create
// or .get as {publicKey}: the standard PublicKeyCredentialCreationOptions or
// RequestOptions JSON (binary fields base64url), and the flow that must
// receive the answer.
type PasskeyOptions struct {
	ProcessingID string          `json:"processingId"`
	PublicKey    json.RawMessage `json:"publicKey"`
}

// PasskeyView is a passkey as the API lists it.
type PasskeyView struct {
	ID             string    `json:"id"` // the credential id, base64url: the browser's PublicKeyCredential.id
	Name           string    `json:"name"`
	CreatedAt      time.Time `json:"createdAt"`
	LastUsedAt     time.Time `json:"lastUsedAt,omitzero"`
	BackupEligible bool      `json:"backupEligible"`
	BackedUp       bool      `json:"backedUp"`
	Transports     []string  `json:"transports"`
	CloneWarning   bool      `json:"cloneWarning"`
	// RecoveryCodes is set when this passkey turned MFA on: ten
	// single-use codes, shown this once, for the day the device is lost.
	RecoveryCodes []string `json:"recoveryCodes,omitempty"`
}

func viewPasskey(p *tessera.Passkey) PasskeyView {
	t := p.Transports
	if t == nil {
		t = []string{}
	}
	return PasskeyView{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, CreatedAt: p.CreatedAt, LastUsedAt: p.LastUsedAt,
		BackupEligible: p.BackupEligible, BackedUp: p.BackedUp, Transports: t, CloneWarning: p.CloneWarning}
}

// passkeyUser is a user and their passkeys as go-webauthn sees them. The
// user handle is the user id: not secret, and stable.
type passkeyUser struct {
	u    *tessera.User
	keys []*tessera.Passkey
}

func (p passkeyUser) WebAuthnID() []byte          { return []byte(p.u.ID) }
func (p passkeyUser) WebAuthnName() string        { return p.u.Email }
func (p passkeyUser) WebAuthnDisplayName() string { return p.u.Email }
func (p passkeyUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(p.keys))
	for _, k := range p.keys {
		transports := make([]protocol.AuthenticatorTransport, 0, len(k.Transports))
		for _, t := range k.Transports {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
		out = append(out, webauthn.Credential{ID: k.ID, PublicKey: k.PublicKey, AttestationFormat: k.AttestationFormat, Transport: transports,
			Flags:         webauthn.CredentialFlags{UserPresent: true, UserVerified: k.UserVerified, BackupEligible: k.BackupEligible, BackupState: k.BackedUp},
			Authenticator: webauthn.Authenticator{AAGUID: k.AAGUID, SignCount: k.SignCount, CloneWarning: k.CloneWarning}})
	}
	return out
}

func (p passkeyUser) descriptors() []protocol.CredentialDescriptor {
	var out []protocol.CredentialDescriptor
	for _, c := range p.WebAuthnCredentials() {
		out = append(out, c.Descriptor())
	}
	return out
}

func (s *Service) relyingParty() (*webauthn.WebAuthn, error) {
	if s.WebAuthn == nil {
		return nil, tessera.Errorf(tessera.ENOTFOUND, "Passkeys are not configured on this server")
	}
	return s.WebAuthn, nil
}

// passkeyFlow stores a passkey flow holding the ceremony's session data.
func (s *Service) passkeyFlow(ctx context.Context, typ tessera.FlowType, u *tessera.User, sess *tessera.Session, session *webauthn.SessionData, meta Meta) (*tessera.Flow, error) {
	f := s.newFlow(typ, stateChallengeSent, u, sess, meta)
	var err error
	if f.Challenge, err = json.Marshal(session); err != nil {
		return nil, err
	}
	return f, s.Store.CreateFlow(ctx, f)
}

func sessionOf(f *tessera.Flow) (webauthn.SessionData, error) {
	var session webauthn.SessionData
	if len(f.Challenge) == 0 {
		return session, nil
	}
	err := json.Unmarshal(f.Challenge, &session)
	return session, err
}

// refused turns a ceremony the library rejected into a 422 naming the
// credential, with the library's reason (wrong origin, RP ID, challenge).
func refused(err error) error {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		msg := perr.Details
		if perr.DevInfo != "" {
			msg += ": " + perr.DevInfo
		}
		return tessera.Invalid(tessera.FieldError{Path: "credential", Error: "was refused: " + msg})
	}
	return tessera.Invalid(tessera.FieldError{Path: "credential", Error: "was refused: " + err.Error()})
}

// BeginPasskeyEnrolment starts adding a passkey to a privileged session's
// user: a discoverable credential, user verification required, no
// attestation, none of the user's passkeys again.
func (s *Service) BeginPasskeyEnrolment(ctx context.Context, u *tessera.User, sess *tessera.Session, meta Meta) (*PasskeyOptions, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	wa, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	keys, err := s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	if len(keys) >= maxPasskeys {
		return nil, tessera.Errorf(tessera.ECONFLICT, "This account has %d passkeys, the most it may: remove one first", maxPasskeys)
	}
	pu := passkeyUser{u, keys}
	creation, session, err := wa.BeginRegistration(pu,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey: protocol.ResidentKeyRequirementRequired, RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification: protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(pu.descriptors()))
	if err != nil {
		return nil, err
	}
	f, err := s.passkeyFlow(ctx, tessera.FlowPasskeyEnrolment, u, sess, session, meta)
	if err != nil {
		return nil, err
	}
	options, err := json.Marshal(creation.Response)
	return &PasskeyOptions{ProcessingID: f.ID, PublicKey: options}, err
}

// FinishPasskeyEnrolment checks the browser's attestation response for
// flow processingID and adds the passkey; other sessions live on (a new
// passkey takes nothing from anyone), and a notice goes out.
func (s *Service) FinishPasskeyEnrolment(ctx context.Context, u *tessera.User, sess *tessera.Session, processingID, name string, credential json.RawMessage, meta Meta) (*PasskeyView, error) {
	if err := s.Authorize(ctx, u, sess, policy.EnrolFactor); err != nil {
		return nil, err
	}
	wa, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	if name, err = passkeyName(name); err != nil {
		return nil, err
	}
	if len(credential) == 0 {
		return nil, tessera.Invalid(tessera.FieldError{Path: "credential", Error: "is required: the PublicKeyCredential navigator.credentials.create gave"})
	}
	f, err := s.userFlow(ctx, u, tessera.FlowPasskeyEnrolment, processingID, stateChallengeSent)
	if err != nil {
		return nil, err
	}
	if f.SessionID != sess.ID {
		return nil, flowGone()
	}
	if _, err := s.reserveAttempt(ctx, f.ID); err != nil {
		return nil, err
	}
	session, err := sessionOf(f)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credential)
	if err != nil {
		return nil, refused(err)
	}
	keys, err := s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	mfaBefore := policy.Of(u, 0).MFA()
	cred, err := wa.CreateCredential(passkeyUser{u, keys}, session, parsed)
	if err != nil {
		return nil, refused(err)
	}
	if !cred.Flags.UserVerified {
		return nil, tessera.Invalid(tessera.FieldError{Path: "credential", Error: "was refused: the authenticator did not verify the user"})
	}
	for _, k := range keys {
		if bytes.Equal(k.ID, cred.ID) {
			return nil, tessera.Errorf(tessera.ECONFLICT, "This passkey is added already")
		}
	}
	if len(keys) >= maxPasskeys { // again: enrolments begun earlier may have finished since
		return nil, tessera.Errorf(tessera.ECONFLICT, "This account has %d passkeys, the most it may: remove one first", maxPasskeys)
	}
	now := s.now()
	if name == "" {
		name = "Passkey " + now.Format("2006-01-02")
	}
	p := &tessera.Passkey{ID: cred.ID, Name: name, PublicKey: cred.PublicKey, AAGUID: cred.Authenticator.AAGUID, SignCount: cred.Authenticator.SignCount,
		UserVerified: cred.Flags.UserVerified, BackupEligible: cred.Flags.BackupEligible, BackedUp: cred.Flags.BackupState,
		AttestationFormat: cred.AttestationFormat, CreatedAt: now}
	for _, t := range cred.Transport {
		p.Transports = append(p.Transports, string(t))
	}
	err = s.inTx(ctx, func(t *txn) error {
		if err := t.store.UseFlow(ctx, f.ID, now); err != nil {
			return err
		}
		// The session is not lifted to this passkey's assurance: whoever
		// adds a passkey of their own must not thereby count as having
		// used one (to remove the owner's, say). Logging in with it does.
		if err := t.store.SavePasskeys(ctx, u.ID, keys, append(slices.Clone(keys), p), now); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "passkey_added", "name", name); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditPasskeyAdded, u, meta, name)
	})
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, flowGone()
	}
	if err != nil {
		return nil, err
	}
	v := viewPasskey(p)
	if !mfaBefore {
		// With a passkey, a password login takes a second factor: without
		// recovery codes, losing the device would lock the user out.
		if v.RecoveryCodes, err = s.NewRecoveryCodes(ctx, u); err != nil {
			return nil, err
		}
	}
	return &v, nil
}

func passkeyName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > 64 || printable(name, 256) != name || strings.IndexFunc(name, isFormat) >= 0 {
		return "", tessera.Invalid(tessera.FieldError{Path: "name", Error: "must be at most 64 printable characters"})
	}
	return name, nil
}

// isFormat reports invisible formatting characters (bidi overrides, zero
// widths): a name shown in emails must read as it is.
func isFormat(r rune) bool { return unicode.Is(unicode.Cf, r) }

// Passkeys lists the user's passkeys.
func (s *Service) Passkeys(ctx context.Context, u *tessera.User) ([]PasskeyView, error) {
	keys, err := s.Store.Passkeys(ctx, u.ID)
	out := make([]PasskeyView, 0, len(keys))
	for _, k := range keys {
		out = append(out, viewPasskey(k))
	}
	return out, err
}

// changePasskey applies change to the user's passkey id (base64url) and
// saves the list; ENOTFOUND for no such passkey.
func (s *Service) changePasskey(ctx context.Context, u *tessera.User, id string, change func(keys []*tessera.Passkey, i int) ([]*tessera.Passkey, error)) (*tessera.Passkey, []*tessera.Passkey, error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) == 0 {
		return nil, nil, tessera.Errorf(tessera.ENOTFOUND, "No such passkey")
	}
	keys, err := s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, nil, err
	}
	i := slices.IndexFunc(keys, func(k *tessera.Passkey) bool { return bytes.Equal(k.ID, raw) })
	if i < 0 {
		return nil, nil, tessera.Errorf(tessera.ENOTFOUND, "No such passkey")
	}
	next, err := change(keys, i)
	if err != nil {
		return nil, nil, err
	}
	return keys[i], next, s.Store.SavePasskeys(ctx, u.ID, keys, next, s.now())
}

// RenamePasskey names a passkey.
func (s *Service) RenamePasskey(ctx context.Context, u *tessera.User, id, name string) (*PasskeyView, error) {
	name, err := passkeyName(name)
	if err != nil {
		return nil, err
	}
	if name == "" {
		return nil, tessera.Invalid(tessera.FieldError{Path: "name", Error: "is required"})
	}
	var renamed tessera.Passkey
	_, _, err = s.changePasskey(ctx, u, id, func(keys []*tessera.Passkey, i int) ([]*tessera.Passkey, error) {
		next := slices.Clone(keys)
		renamed = *keys[i]
		renamed.Name = name
		next[i] = &renamed
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	v := viewPasskey(&renamed)
	return &v, nil
}

// DeletePasskey removes a passkey. It takes a session that used a factor
// as strong (a passkey or a recovery code), and never removes the last
// way the user can log in: a user without a password keeps one passkey.
func (s *Service) DeletePasskey(ctx context.Context, u *tessera.User, sess *tessera.Session, id string, meta Meta) error {
	if err := s.Authorize(ctx, u, sess, policy.RemoveFactor); err != nil {
		return err
	}
	if err := policy.MayRemove(sessionAuth(sess), policy.Passkey); err != nil {
		return err
	}
	gone, _, err := s.changePasskey(ctx, u, id, func(keys []*tessera.Passkey, i int) ([]*tessera.Passkey, error) {
		usable := 0
		for j, k := range keys {
			if j != i && !k.CloneWarning {
				usable++
			}
		}
		if u.PasswordHash == "" && usable == 0 {
			return nil, tessera.Errorf(tessera.ECONFLICT, "This is the last way you can log in: add another passkey (or a password) first")
		}
		return slices.Delete(slices.Clone(keys), i, i+1), nil
	})
	if err != nil {
		return err
	}
	s.audit(ctx, tessera.AuditPasskeyRemoved, u, meta, gone.Name)
	return s.notify(ctx, u, u.Email, "passkey_removed", "name", gone.Name)
}

// RemovePassword makes the account passwordless: only its passkeys log
// it in. Refused without a passkey.
func (s *Service) RemovePassword(ctx context.Context, u *tessera.User, sess *tessera.Session, meta Meta) error {
	if err := s.Authorize(ctx, u, sess, policy.RemoveFactor); err != nil {
		return err
	}
	if !u.HasPasskeys() {
		return tessera.Errorf(tessera.ECONFLICT, "The password is the only way you log in: add a passkey first")
	}
	if u.PasswordHash == "" {
		return tessera.Errorf(tessera.ENOTFOUND, "This account has no password")
	}
	err := s.inTx(ctx, func(t *txn) error {
		if err := t.store.RemovePassword(ctx, u.ID); err != nil {
			return err
		}
		if err := t.store.EndFlows(ctx, u.ID, passwordFlows, s.now()); err != nil {
			return err
		}
		if err := s.notifyOn(ctx, t.engine, u, u.Email, "password_removed"); err != nil {
			return err
		}
		return s.auditIn(ctx, t, tessera.AuditPasswordRemoved, u, meta, "passkeys only")
	})
	return err
}

// BeginPasskeyLogin starts a login with a passkey alone: a challenge any
// discoverable passkey of this site may sign, so no email is typed.
func (s *Service) BeginPasskeyLogin(ctx context.Context, meta Meta) (*PasskeyOptions, error) {
	wa, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	assertion, session, err := wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, err
	}
	f, err := s.passkeyFlow(ctx, tessera.FlowPasskeyLogin, nil, nil, session, meta)
	if err != nil {
		return nil, err
	}
	options, err := json.Marshal(assertion.Response)
	return &PasskeyOptions{ProcessingID: f.ID, PublicKey: options}, err
}

// FinishPasskeyLogin checks the assertion for flow processingID and logs
// the passkey's user in at AAL 2: a passkey with user verification is two
// factors (amr hwk and user).
func (s *Service) FinishPasskeyLogin(ctx context.Context, processingID string, credential json.RawMessage, meta Meta) (*Tokens, error) {
	wa, err := s.relyingParty()
	if err != nil {
		return nil, err
	}
	if len(credential) == 0 {
		return nil, tessera.Invalid(tessera.FieldError{Path: "credential", Error: "is required: the PublicKeyCredential navigator.credentials.get gave"})
	}
	if _, err := uuid.Parse(processingID); err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "processingId", Error: "must be the processingId POST /auth/passkeys/login/begin returned"})
	}
	if f, err := s.Store.Flow(ctx, processingID); err != nil || f.Type != tessera.FlowPasskeyLogin {
		if err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
			return nil, err
		}
		return nil, flowGone() // and no attempt taken from a flow of another kind
	}
	f, err := s.reserveAttempt(ctx, processingID)
	if err != nil {
		return nil, err
	}
	session, err := sessionOf(f)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(credential)
	if err != nil {
		return nil, refused(err)
	}
	var owner passkeyUser
	_, cred, err := wa.ValidatePasskeyLogin(func(_, userHandle []byte) (webauthn.User, error) {
		u, err := s.Store.User(ctx, string(userHandle))
		if err != nil {
			return nil, err
		}
		keys, err := s.Store.Passkeys(ctx, u.ID)
		owner = passkeyUser{u, keys}
		return owner, err
	}, session, parsed)
	if err != nil {
		s.observe("passkey_failed")
		if owner.u != nil {
			s.audit(ctx, tessera.AuditLoginFailed, owner.u, meta, "passkey refused")
		}
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "This passkey is not accepted here")
	}
	u := owner.u
	if u.Status == tessera.UserDisabled {
		s.audit(ctx, tessera.AuditLoginFailed, u, meta, "account disabled")
		return nil, tessera.Errorf(tessera.EFORBIDDEN, "This account is disabled")
	}
	if err := s.usePasskey(ctx, u, owner.keys, cred, meta); err != nil {
		return nil, err
	}
	if err := s.Store.UseFlow(ctx, f.ID, s.now()); err != nil {
		return nil, flowGone()
	}
	tokens, err := s.newAuditedSession(ctx, u, []string{policy.Passkey, policy.UserVerified}, meta, tessera.AuditLoginSuccess, "passkey")
	if err == nil {
		s.observe("passkey_success")
	}
	return tokens, err
}

// usePasskey records a passkey's use: its new sign counter and time. A
// counter that did not move forward means two devices hold the key: the
// passkey is marked, refused from then on, and the user told.
func (s *Service) usePasskey(ctx context.Context, u *tessera.User, keys []*tessera.Passkey, cred *webauthn.Credential, meta Meta) error {
	i := slices.IndexFunc(keys, func(k *tessera.Passkey) bool { return bytes.Equal(k.ID, cred.ID) })
	if i < 0 {
		return tessera.Errorf(tessera.EUNAUTHORIZED, "This passkey is not accepted here")
	}
	if keys[i].CloneWarning {
		s.observe("passkey_clone")
		return tessera.Errorf(tessera.EFORBIDDEN, "This passkey may have been copied and is refused: log in another way and remove it")
	}
	used := *keys[i]
	next := slices.Clone(keys)
	next[i] = &used
	now := s.now()
	if cred.Authenticator.CloneWarning {
		used.CloneWarning = true
		err := s.inTx(ctx, func(t *txn) error {
			if err := t.store.SavePasskeys(ctx, u.ID, keys, next, now); err != nil {
				return err
			}
			if err := s.notifyOn(ctx, t.engine, u, u.Email, "passkey_cloned", "name", used.Name); err != nil {
				return err
			}
			return s.auditIn(ctx, t, tessera.AuditPasskeyCloned, u, meta, used.Name)
		})
		if err != nil {
			return err
		}
		s.observe("passkey_clone")
		return tessera.Errorf(tessera.EFORBIDDEN, "This passkey may have been copied and is refused: log in another way and remove it")
	}
	used.SignCount, used.LastUsedAt, used.BackedUp = cred.Authenticator.SignCount, now, cred.Flags.BackupState
	if err := s.Store.SavePasskeys(ctx, u.ID, keys, next, now); err != nil {
		if tessera.ErrorCode(err) == tessera.ECONFLICT {
			return tessera.Errorf(tessera.EUNAUTHORIZED, "This passkey was used at the same moment elsewhere: try again")
		}
		return err
	}
	return nil
}

// passkeyFactor is a passkey as the second step of a login, a step-up or
// a key recovery: Begin asks the user's passkeys to sign the flow's
// challenge, Verify checks the assertion.
type passkeyFactor struct{ s *Service }

func (passkeyFactor) Method() string { return policy.Passkey }
func (passkeyFactor) sends() bool    { return true }

func (f passkeyFactor) Begin(ctx context.Context, u *tessera.User, fl *tessera.Flow) (any, error) {
	wa, err := f.s.relyingParty()
	if err != nil {
		return nil, err
	}
	keys, err := f.s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	assertion, session, err := wa.BeginLogin(passkeyUser{u, keys}, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, err
	}
	next := *fl
	if next.Challenge, err = json.Marshal(session); err != nil {
		return nil, err
	}
	if err := f.s.Store.AdvanceFlow(ctx, &next, fl.State, f.s.now()); err != nil {
		if tessera.ErrorCode(err) == tessera.ENOTFOUND {
			return nil, flowGone()
		}
		return nil, err
	}
	options, err := json.Marshal(assertion.Response)
	return &PasskeyOptions{ProcessingID: fl.ID, PublicKey: options}, err
}

func (f passkeyFactor) Verify(ctx context.Context, u *tessera.User, fl *tessera.Flow, proof string) error {
	wa, err := f.s.relyingParty()
	if err != nil {
		return err
	}
	session, err := sessionOf(fl)
	if err != nil || session.Challenge == "" {
		return tessera.Invalid(tessera.FieldError{Path: "credential", Error: "no passkey challenge was asked for this flow: POST /auth/login/passkey first"})
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes([]byte(proof))
	if err != nil {
		return refused(err)
	}
	keys, err := f.s.Store.Passkeys(ctx, u.ID)
	if err != nil {
		return err
	}
	cred, err := wa.ValidateLogin(passkeyUser{u, keys}, session, parsed)
	if err != nil {
		return refused(err)
	}
	return f.s.usePasskey(ctx, u, keys, cred, Meta{})
}

// BeginPasskeyFactor asks the user's passkeys to sign the challenge of a
// login (or step-up, or key recovery) waiting for its second factor.
func (s *Service) BeginPasskeyFactor(ctx context.Context, processingID string) (*PasskeyOptions, error) {
	fl, u, err := s.openFlow(ctx, processingID, tessera.FlowLogin, tessera.FlowReauthentication, tessera.FlowKeyRecovery)
	if err != nil {
		return nil, err
	}
	if err := s.mayComplete(ctx, u, fl.Methods, FactorPasskey, "processingId"); err != nil {
		return nil, err
	}
	res, err := s.factor(policy.Passkey).Begin(ctx, u, fl)
	if err != nil {
		return nil, err
	}
	return res.(*PasskeyOptions), nil
}
