package webauthntest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/tessera-id/tessera/internal/webauthntest"
)

// These tests check the software authenticator against the relying party
// library Tessera uses: what it produces must pass go-webauthn's checks, and
// each misbehaviour option must trip the check it is meant for.

const origin = "http://localhost:8080"

func newRP(t *testing.T) *webauthn.WebAuthn {
	t.Helper()
	rp, err := webauthn.New(&webauthn.Config{
		RPID:          "localhost",
		RPDisplayName: "Tessera",
		RPOrigins:     []string{origin},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// user is an in-memory webauthn.User.
type user struct {
	id    []byte
	name  string
	creds []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.name }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// store replaces the stored credential with the one a login returned, as a
// relying party must to keep the counter.
func (u *user) store(c *webauthn.Credential) {
	for i := range u.creds {
		if bytes.Equal(u.creds[i].ID, c.ID) {
			u.creds[i] = *c
			return
		}
	}
	u.creds = append(u.creds, *c)
}

// register runs a full registration: passkey options as Tessera sends them
// (resident key and user verification required, attestation none).
func register(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	creation, session, err := rp.BeginRegistration(u,
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementRequired,
			RequireResidentKey: protocol.ResidentKeyRequired(),
			UserVerification:   protocol.VerificationRequired,
		}),
		webauthn.WithConveyancePreference(protocol.PreferNoAttestation),
		webauthn.WithExclusions(webauthn.Credentials(u.creds).CredentialDescriptors()),
	)
	if err != nil {
		t.Fatal(err)
	}
	optionsJSON := mustJSON(t, creation.Response)
	resp, err := a.Create(optionsJSON, opts...)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		t.Fatalf("parse creation response: %v\n%s", describe(err), resp)
	}
	return rp.CreateCredential(u, *session, parsed)
}

// mustRegister registers and stores the credential.
func mustRegister(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, opts ...webauthntest.Option) *webauthn.Credential {
	t.Helper()
	c, err := register(t, rp, a, u, opts...)
	if err != nil {
		t.Fatalf("CreateCredential: %v", describe(err))
	}
	u.store(c)
	return c
}

// discoverable begins a passkey login (no user known) requiring user
// verification, and returns the session and the authenticator's answer.
func discoverable(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, opts ...webauthntest.Option) (*webauthn.SessionData, []byte, error) {
	t.Helper()
	assertion, session, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(mustJSON(t, assertion.Response), opts...)
	return session, resp, err
}

// finishDiscoverable validates a passkey login, finding the user among users
// by the user handle.
func finishDiscoverable(t *testing.T, rp *webauthn.WebAuthn, session *webauthn.SessionData, resp []byte, users ...*user) (*webauthn.Credential, error) {
	t.Helper()
	parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
	if err != nil {
		t.Fatalf("parse assertion response: %v\n%s", describe(err), resp)
	}
	_, c, err := rp.ValidatePasskeyLogin(func(rawID, userHandle []byte) (webauthn.User, error) {
		for _, u := range users {
			if bytes.Equal(u.id, userHandle) {
				return u, nil
			}
		}
		return nil, errors.New("no such user")
	}, *session, parsed)
	return c, err
}

// login runs a login for a known user (allowCredentials listing theirs).
func login(t *testing.T, rp *webauthn.WebAuthn, a *webauthntest.Authenticator, u *user, opts ...webauthntest.Option) (*webauthn.Credential, error) {
	t.Helper()
	assertion, session, err := rp.BeginLogin(u, webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := a.Get(mustJSON(t, assertion.Response), opts...)
	if err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(resp)
	if err != nil {
		t.Fatalf("parse assertion response: %v\n%s", describe(err), resp)
	}
	return rp.ValidateLogin(u, *session, parsed)
}

func TestRegisterThenLogInDiscoverableAndWithAllowList(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}

	c := mustRegister(t, rp, a, u)
	if c.AttestationFormat != "none" || c.Authenticator.SignCount != 0 || !c.Flags.UserPresent || !c.Flags.UserVerified ||
		c.Flags.BackupEligible || c.Authenticator.Attachment != protocol.Platform ||
		!slices.Equal(c.Transport, []protocol.AuthenticatorTransport{protocol.Internal}) ||
		c.Attestation.PublicKeyAlgorithm != -7 {
		t.Errorf("credential = %+v", c)
	}
	held := a.Credentials()
	if len(held) != 1 || !bytes.Equal(held[0].ID, c.ID) || held[0].RPID != "localhost" ||
		!bytes.Equal(held[0].UserHandle, u.id) || held[0].UserName != "ada@example.com" {
		t.Fatalf("Credentials() = %+v", held)
	}

	session, resp, err := discoverable(t, rp, a)
	if err != nil {
		t.Fatal(err)
	}
	got, err := finishDiscoverable(t, rp, session, resp, u)
	if err != nil {
		t.Fatalf("ValidatePasskeyLogin: %v", describe(err))
	}
	if got.Authenticator.SignCount != 1 || got.Authenticator.CloneWarning {
		t.Errorf("after discoverable login: sign count %d, clone warning %v", got.Authenticator.SignCount, got.Authenticator.CloneWarning)
	}
	u.store(got)

	got, err = login(t, rp, a, u)
	if err != nil {
		t.Fatalf("ValidateLogin: %v", describe(err))
	}
	if got.Authenticator.SignCount != 2 || got.Authenticator.CloneWarning {
		t.Errorf("after login: sign count %d, clone warning %v", got.Authenticator.SignCount, got.Authenticator.CloneWarning)
	}
	if n := a.Credentials()[0].SignCount; n != 2 {
		t.Errorf("authenticator's counter = %d, want 2", n)
	}
}

// TestResponseJSON pins the browser's JSON shapes, which Tessera's API
// documents for navigator.credentials and @simplewebauthn/browser.
func TestResponseJSON(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	creation, _, err := rp.BeginRegistration(u)
	if err != nil {
		t.Fatal(err)
	}
	// Create accepts the whole {"publicKey": ...} object too.
	resp, err := a.Create(mustJSON(t, creation))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ID, RawID, Type, AuthenticatorAttachment string
		Response                                 map[string]any
		ClientExtensionResults                   map[string]any
	}
	if err := json.Unmarshal(resp, &reg); err != nil {
		t.Fatal(err)
	}
	if reg.ID == "" || reg.ID != reg.RawID || reg.Type != "public-key" || reg.AuthenticatorAttachment != "platform" ||
		reg.ClientExtensionResults == nil || strings.ContainsAny(string(resp), "=+/") {
		t.Errorf("registration response = %s", resp)
	}
	for _, k := range []string{"clientDataJSON", "attestationObject", "transports", "authenticatorData", "publicKey", "publicKeyAlgorithm"} {
		if _, ok := reg.Response[k]; !ok {
			t.Errorf("registration response lacks response.%s: %s", k, resp)
		}
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(resp)
	if err != nil {
		t.Fatal(describe(err))
	}
	cd := parsed.Response.CollectedClientData
	if cd.Type != protocol.CreateCeremony || cd.Origin != origin || cd.Challenge != creation.Response.Challenge.String() || cd.CrossOrigin {
		t.Errorf("clientData = %+v", cd)
	}
	if f := parsed.Response.AttestationObject.AuthData.Flags; f != protocol.FlagUserPresent|protocol.FlagUserVerified|protocol.FlagAttestedCredentialData {
		t.Errorf("flags = %08b", f)
	}
}

func TestBackupFlags(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin, webauthntest.WithBackup())
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	c := mustRegister(t, rp, a, u)
	if !c.Flags.BackupEligible || !c.Flags.BackupState {
		t.Errorf("flags = %+v", c.Flags)
	}
	if _, err := login(t, rp, a, u); err != nil {
		t.Fatalf("ValidateLogin: %v", describe(err))
	}
}

func TestRefusals(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}

	_, err := register(t, rp, a, u, webauthntest.WithOrigin("http://evil.example"))
	wantRefused(t, "registration from another origin", err, "Error validating origin")
	_, err = register(t, rp, a, u, webauthntest.WithRPID("evil.example"))
	wantRefused(t, "registration for another RP ID", err, "RP Hash mismatch")
	_, err = register(t, rp, a, u, webauthntest.WithoutUserVerification())
	wantRefused(t, "registration without user verification", err, "User verification required")

	mustRegister(t, rp, a, u)

	_, err = login(t, rp, a, u, webauthntest.WithOrigin("http://evil.example"))
	wantRefused(t, "login from another origin", err, "Error validating origin")
	_, err = login(t, rp, a, u, webauthntest.WithRPID("evil.example"))
	wantRefused(t, "login for another RP ID", err, "RP Hash mismatch")
	_, err = login(t, rp, a, u, webauthntest.WithoutUserVerification())
	wantRefused(t, "login without user verification", err, "User verification required")

	// A replay: an assertion accepted once is sent again against a new
	// session. The library stores no used challenges; the new session's
	// challenge differs, so the old clientDataJSON no longer matches.
	session, resp, err := discoverable(t, rp, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := finishDiscoverable(t, rp, session, resp, u); err != nil {
		t.Fatalf("first use: %v", describe(err))
	}
	_, fresh, err := rp.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		t.Fatal(err)
	}
	_, err = finishDiscoverable(t, rp, fresh, resp, u)
	wantRefused(t, "replayed assertion", err, "Error validating challenge")
	// The library keeps no state: the same session accepts the same
	// assertion again (had the caller stored the new counter, only a clone
	// warning would say so). Consuming the session once is the caller's job.
	if _, err := finishDiscoverable(t, rp, session, resp, u); err != nil {
		t.Errorf("second use of one session: %v (the library now refuses it; simplify the caller?)", describe(err))
	}
}

func TestExcludedAndForgotten(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	c := mustRegister(t, rp, a, u)

	if _, err := register(t, rp, a, u); !errors.Is(err, webauthntest.ErrExcluded) {
		t.Errorf("second enrolment of one authenticator: err = %v, want ErrExcluded", err)
	}
	if !a.Forget(c.ID) || a.Forget(c.ID) {
		t.Error("Forget did not report the credential once")
	}
	if _, err := login(t, rp, a, u); !errors.Is(err, webauthntest.ErrNoCredential) {
		t.Errorf("login after Forget: err = %v, want ErrNoCredential", err)
	}
	if _, _, err := discoverable(t, rp, a); !errors.Is(err, webauthntest.ErrNoCredential) {
		t.Errorf("discoverable login after Forget: err = %v, want ErrNoCredential", err)
	}
}

func TestAnotherUsersCredential(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	ada := &user{id: []byte("user-1"), name: "ada@example.com"}
	bob := &user{id: []byte("user-2"), name: "bob@example.com"}
	mustRegister(t, rp, a, ada)
	bobs := mustRegister(t, rp, a, bob)

	// Both are resident for localhost: a discoverable login picks the newest
	// (Bob's) unless told otherwise.
	session, resp, err := discoverable(t, rp, a)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := finishDiscoverable(t, rp, session, resp, ada, bob); err != nil || !bytes.Equal(c.ID, bobs.ID) {
		t.Fatalf("discoverable login: %v, want Bob's credential", describe(err))
	}
	session, resp, err = discoverable(t, rp, a, webauthntest.WithCredential(ada.creds[0].ID))
	if err != nil {
		t.Fatal(err)
	}
	if c, err := finishDiscoverable(t, rp, session, resp, ada, bob); err != nil || !bytes.Equal(c.ID, ada.creds[0].ID) {
		t.Fatalf("discoverable login WithCredential(Ada's): %v", describe(err))
	}

	// Ada's login, answered with Bob's credential.
	_, err = login(t, rp, a, ada, webauthntest.WithCredential(bobs.ID))
	var unknown *protocol.ErrorUnknownCredential
	if !errors.As(err, &unknown) {
		t.Errorf("another user's credential: err = %v, want ErrorUnknownCredential", describe(err))
	}
}

// TestCounterGoingBackwards shows how go-webauthn v0.18.2 reports a counter
// that does not increase: not as an error. ValidateLogin and
// ValidatePasskeyLogin succeed and return the credential with
// Authenticator.CloneWarning set to true and Authenticator.SignCount left at
// the stored value (the new, lower count is discarded). The caller must check
// the returned credential's Authenticator.CloneWarning and refuse the login
// itself. The check is "new count <= stored count, unless both are 0", so an
// authenticator that always reports 0 (synced passkeys) never warns, and the
// flag is copied from the stored credential, so a caller that stores it sees
// it again on every later login.
func TestCounterGoingBackwards(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	mustRegister(t, rp, a, u)
	for range 3 {
		c, err := login(t, rp, a, u)
		if err != nil {
			t.Fatal(describe(err))
		}
		u.store(c)
	}

	c, err := login(t, rp, a, u, webauthntest.WithSignCount(2))
	if err != nil {
		t.Fatalf("ValidateLogin refused a lower counter itself: %v", describe(err))
	}
	if !c.Authenticator.CloneWarning || c.Authenticator.SignCount != 3 {
		t.Errorf("lower counter: clone warning %v, sign count %d; want true, 3", c.Authenticator.CloneWarning, c.Authenticator.SignCount)
	}
	c, err = login(t, rp, a, u, webauthntest.WithSignCount(3))
	if err != nil {
		t.Fatalf("ValidateLogin refused an equal counter itself: %v", describe(err))
	}
	if !c.Authenticator.CloneWarning {
		t.Error("equal counter: no clone warning")
	}
}

// TestClonedAuthenticator: two authenticators holding one key count
// independently, so the second to log in repeats a count already seen.
func TestClonedAuthenticator(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin)
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	mustRegister(t, rp, a, u)
	clone := webauthntest.New(origin)
	if err := clone.Import(a.Credentials()[0]); err != nil {
		t.Fatal(err)
	}

	c, err := login(t, rp, a, u)
	if err != nil {
		t.Fatalf("original: %v", describe(err))
	}
	if c.Authenticator.CloneWarning {
		t.Error("original: clone warning")
	}
	u.store(c)
	session, resp, err := discoverable(t, rp, clone)
	if err != nil {
		t.Fatal(err)
	}
	c, err = finishDiscoverable(t, rp, session, resp, u)
	if err != nil {
		t.Fatalf("clone: %v", describe(err))
	}
	if !c.Authenticator.CloneWarning {
		t.Error("the clone's login (count 1 after a stored 1) raised no clone warning")
	}
	if a.Credentials()[0].SignCount != 1 || clone.Credentials()[0].SignCount != 1 {
		t.Error("the two copies do not count independently")
	}
}

// TestZeroCounter: an authenticator that never counts (WithSignCount(0) for
// every ceremony) is accepted without a clone warning, as the specification
// asks.
func TestZeroCounter(t *testing.T) {
	rp := newRP(t)
	a := webauthntest.New(origin, webauthntest.WithSignCount(0))
	u := &user{id: []byte("user-1"), name: "ada@example.com"}
	mustRegister(t, rp, a, u)
	for range 2 {
		c, err := login(t, rp, a, u)
		if err != nil {
			t.Fatal(describe(err))
		}
		if c.Authenticator.CloneWarning || c.Authenticator.SignCount != 0 {
			t.Fatalf("authenticator record = %+v", c.Authenticator)
		}
		u.store(c)
	}
}

func wantRefused(t *testing.T, what string, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: accepted", what)
	} else if !strings.Contains(describe(err), reason) {
		t.Errorf("%s: refused for %q, want a reason containing %q", what, describe(err), reason)
	}
}

// describe includes go-webauthn's DevInfo, where the precise reason is.
func describe(err error) string {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe.Details + ": " + pe.DevInfo
	}
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
