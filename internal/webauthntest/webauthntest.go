// Package webauthntest is a software WebAuthn authenticator for tests. It
// plays the browser and the authenticator of navigator.credentials.create and
// navigator.credentials.get: it reads the options JSON a relying party sends
// and answers with the PublicKeyCredential JSON a browser would POST back,
// built from real structures (CBOR attestation object, COSE key, ECDSA
// signatures), so that tests exercise the server's WebAuthn library instead of
// a mock of it.
//
// It is a normal package, not a _test file, so that every test package that
// drives Tessera over HTTP can import it. It uses only the standard library and
// CBOR, never the relying party library it is meant to test, so a bug in that
// library's own encoding cannot cancel out in the tests.
//
// Besides the honest behaviour, options (WithOrigin, WithRPID,
// WithoutUserVerification, WithSignCount, WithCredential) make it misbehave in
// the ways a relying party must refuse: a phishing origin, an assertion for
// another site, no user verification, a counter that goes backwards, a
// credential the user does not own. Credentials and Import copy a private key
// into a second Authenticator to simulate a cloned authenticator.
package webauthntest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Errors a browser would report as a DOMException; tests compare with
// errors.Is.
var (
	// ErrNoCredential is returned by Get when the authenticator holds no
	// credential that the options allow (NotAllowedError in a browser).
	ErrNoCredential = errors.New("webauthntest: no matching credential")
	// ErrExcluded is returned by Create when the authenticator already holds
	// a credential in excludeCredentials (InvalidStateError in a browser),
	// which is how a relying party stops a second enrolment of one device.
	ErrExcluded = errors.New("webauthntest: authenticator holds an excluded credential")
)

// Authenticator holds discoverable ES256 credentials (P-256 keys) like a
// platform authenticator with user verification (a phone or laptop passkey
// provider). It is safe for concurrent use. The zero value is not usable; call
// New.
type Authenticator struct {
	mu       sync.Mutex
	defaults settings
	creds    []*Credential // in creation order; the last one wins a discoverable login
}

// Credential is one credential an Authenticator holds, with its private key.
// Credentials returns copies of them and Import takes one, so a test can put
// the same key in two Authenticators (a cloned authenticator) or inspect the
// sign counter.
type Credential struct {
	ID         []byte            // credential id, as the relying party stores it
	RPID       string            // relying party id it was created for
	UserHandle []byte            // user.id of the creation options, returned as userHandle
	UserName   string            // user.name of the creation options, for test messages
	PrivateKey *ecdsa.PrivateKey // P-256 key; the public half is what the relying party stores
	SignCount  uint32            // counter of the last ceremony (creation or assertion)
	Backup     bool              // BE and BS flags: a synced passkey rather than a device-bound one
}

// Option changes one ceremony when given to Create or Get, or every ceremony
// when given to New (a per-call option overrides the New one).
type Option func(*settings)

// settings are the knobs Options turn; the zero value is an honest
// authenticator.
type settings struct {
	origin       string
	rpID         *string
	noUV         bool
	backup       bool
	signCount    *uint32
	credentialID []byte
}

// WithOrigin makes the "browser" report origin in clientDataJSON instead of
// the Authenticator's own, as a phishing page on another origin would.
func WithOrigin(origin string) Option {
	return func(s *settings) { s.origin = origin }
}

// WithRPID puts SHA-256(rpID) in authenticatorData instead of the hash of the
// options' RP ID, as an assertion made for another site would carry. The
// credential is still chosen by the options' RP ID, so the signature stays
// valid and only the RP ID check can refuse it.
func WithRPID(rpID string) Option {
	return func(s *settings) { s.rpID = &rpID }
}

// WithoutUserVerification clears the UV flag (user present but not verified,
// as a security key without a PIN), whatever the options require, so that the
// relying party, not the authenticator, has to refuse it.
func WithoutUserVerification() Option {
	return func(s *settings) { s.noUV = true }
}

// WithBackup sets the BE and BS flags on credentials Create makes (a synced
// passkey); their assertions carry the same flags, since a relying party
// refuses a credential whose backup eligibility changes. It has no effect on
// Get.
func WithBackup() Option {
	return func(s *settings) { s.backup = true }
}

// WithSignCount sets the credential's counter to n instead of counting: Create
// starts the new credential at n and Get reports n (and keeps it). Given to
// Get with a value not above the stored one it makes the counter go
// backwards; given to New with 0 it makes an authenticator that never counts,
// as synced passkeys do. go-webauthn v0.18.2 does not refuse a counter that
// fails to increase: its ValidateLogin and ValidatePasskeyLogin succeed and
// return the credential with Authenticator.CloneWarning true (SignCount kept
// at the stored value), unless both counts are 0; the relying party must check
// that flag (see TestCounterGoingBackwards).
func WithSignCount(n uint32) Option {
	return func(s *settings) { s.signCount = &n }
}

// WithCredential makes Get use the held credential with this id even when
// allowCredentials does not list it or it belongs to another RP ID, to test
// that the relying party refuses a credential the user does not own. It has no
// effect on Create.
func WithCredential(id []byte) Option {
	return func(s *settings) { s.credentialID = bytes.Clone(id) }
}

// New returns an Authenticator without credentials whose "browser" reports
// origin (e.g. "http://localhost:8080") in clientDataJSON. opts apply to every
// ceremony unless a call overrides them.
func New(origin string, opts ...Option) *Authenticator {
	a := &Authenticator{defaults: settings{origin: origin}}
	for _, o := range opts {
		o(&a.defaults)
	}
	return a
}

// settingsFor returns the defaults with the call's options applied.
func (a *Authenticator) settingsFor(opts []Option) settings {
	s := a.defaults
	for _, o := range opts {
		o(&s)
	}
	return s
}

// Create answers navigator.credentials.create. optionsJSON is the
// PublicKeyCredentialCreationOptions JSON (the "publicKey" member of what the
// relying party sends; a whole {"publicKey": ...} object is accepted too), with
// binary members in base64url as WebAuthn Level 3's JSON form has them. It
// makes a new resident credential for rp.id and user.id, replacing one the
// authenticator holds for the same pair as CTAP2 authenticators do, and returns
// the RegistrationResponseJSON a browser would POST: attestation "none",
// flags UP|UV|AT (BE|BS with WithBackup), AAGUID zero, COSE EC2 P-256 key,
// counter 0 unless WithSignCount.
func (a *Authenticator) Create(optionsJSON []byte, opts ...Option) ([]byte, error) {
	var o struct {
		RP struct {
			ID string `json:"id"`
		} `json:"rp"`
		User struct {
			ID   b64    `json:"id"`
			Name string `json:"name"`
		} `json:"user"`
		Challenge b64 `json:"challenge"`
		Params    []struct {
			Type string `json:"type"`
			Alg  int    `json:"alg"`
		} `json:"pubKeyCredParams"`
		Exclude []descriptor `json:"excludeCredentials"`
	}
	if err := unmarshalOptions(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: creation options: %w", err)
	}
	if o.RP.ID == "" || len(o.User.ID) == 0 || len(o.Challenge) == 0 {
		return nil, errors.New("webauthntest: creation options need rp.id, user.id and challenge")
	}
	// An empty list means the client's defaults, which include ES256.
	es256 := len(o.Params) == 0
	for _, p := range o.Params {
		es256 = es256 || (p.Type == "public-key" && p.Alg == coseAlgES256)
	}
	if !es256 {
		return nil, errors.New("webauthntest: pubKeyCredParams does not allow ES256 (-7)")
	}
	s := a.settingsFor(opts)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &Credential{
		ID:         make([]byte, 32),
		RPID:       o.RP.ID,
		UserHandle: []byte(o.User.ID),
		UserName:   o.User.Name,
		PrivateKey: key,
		Backup:     s.backup,
	}
	if _, err := rand.Read(c.ID); err != nil {
		return nil, err
	}
	if s.signCount != nil {
		c.SignCount = *s.signCount
	}
	cose, spki, err := publicKeys(&key.PublicKey)
	if err != nil {
		return nil, err
	}

	a.mu.Lock()
	for _, held := range a.creds {
		for _, d := range o.Exclude {
			if held.RPID == o.RP.ID && bytes.Equal(held.ID, d.ID) {
				a.mu.Unlock()
				return nil, ErrExcluded
			}
		}
	}
	a.creds = slices.DeleteFunc(a.creds, func(h *Credential) bool {
		return h.RPID == c.RPID && bytes.Equal(h.UserHandle, c.UserHandle)
	})
	a.creds = append(a.creds, c)
	a.mu.Unlock()

	clientData, err := clientDataJSON("webauthn.create", o.Challenge, s.origin)
	if err != nil {
		return nil, err
	}
	// Attested credential data: AAGUID (zero: attestation "none" carries no
	// model), credential id length and id, COSE key.
	attested := make([]byte, 16, 16+2+len(c.ID)+len(cose))
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(c.ID)))
	attested = append(attested, c.ID...)
	attested = append(attested, cose...)
	authData := authenticatorData(s, c.RPID, flagAT|c.flags(), c.SignCount, attested)

	attObj, err := ctap2.Marshal(map[string]any{
		"fmt":      "none",
		"attStmt":  map[string]any{},
		"authData": authData,
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id":    b64(c.ID),
		"rawId": b64(c.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64(clientData),
			"attestationObject": b64(attObj),
			"transports":        []string{"internal"},
			// Level 3 browsers also send these three in toJSON(); servers
			// may use them instead of parsing the attestation object.
			"authenticatorData":  b64(authData),
			"publicKey":          b64(spki),
			"publicKeyAlgorithm": coseAlgES256,
		},
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
	})
}

// Get answers navigator.credentials.get. optionsJSON is the
// PublicKeyCredentialRequestOptions JSON (the "publicKey" member, or the whole
// object). With an empty allowCredentials it uses the most recent resident
// credential of rpId (a discoverable login, where a browser would let the user
// pick one; WithCredential picks another), otherwise a listed one it holds. It
// advances that credential's counter by one (unless WithSignCount) and returns
// the AuthenticationResponseJSON a browser would POST, whose signature is
// ECDSA P-256 (ASN.1 DER) over authenticatorData || SHA-256(clientDataJSON).
// It returns ErrNoCredential when no held credential fits.
func (a *Authenticator) Get(optionsJSON []byte, opts ...Option) ([]byte, error) {
	var o struct {
		Challenge b64          `json:"challenge"`
		RPID      string       `json:"rpId"`
		Allow     []descriptor `json:"allowCredentials"`
	}
	if err := unmarshalOptions(optionsJSON, &o); err != nil {
		return nil, fmt.Errorf("webauthntest: request options: %w", err)
	}
	if o.RPID == "" || len(o.Challenge) == 0 {
		// A browser defaults rpId to the origin's host; tests must be
		// explicit, as the library always sends it.
		return nil, errors.New("webauthntest: request options need rpId and challenge")
	}
	s := a.settingsFor(opts)

	a.mu.Lock()
	c := a.pick(o.RPID, o.Allow, s.credentialID)
	if c == nil {
		a.mu.Unlock()
		return nil, ErrNoCredential
	}
	if s.signCount != nil {
		c.SignCount = *s.signCount
	} else {
		c.SignCount++
	}
	count, id, handle, key := c.SignCount, c.ID, c.UserHandle, c.PrivateKey
	flags := c.flags()
	a.mu.Unlock()

	clientData, err := clientDataJSON("webauthn.get", o.Challenge, s.origin)
	if err != nil {
		return nil, err
	}
	authData := authenticatorData(s, o.RPID, flags, count, nil)
	digest := sha256.Sum256(append(bytes.Clone(authData), sha256Sum(clientData)...))
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id":    b64(id),
		"rawId": b64(id),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64(clientData),
			"authenticatorData": b64(authData),
			"signature":         b64(sig),
			"userHandle":        b64(handle),
		},
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
	})
}

// pick returns the credential a Get uses, or nil. a.mu is held.
func (a *Authenticator) pick(rpID string, allow []descriptor, forced []byte) *Credential {
	for i := len(a.creds) - 1; i >= 0; i-- {
		c := a.creds[i]
		switch {
		case forced != nil:
			if bytes.Equal(c.ID, forced) {
				return c
			}
		case c.RPID != rpID:
		case len(allow) == 0:
			return c
		default:
			for _, d := range allow {
				if bytes.Equal(c.ID, d.ID) {
					return c
				}
			}
		}
	}
	return nil
}

// Credentials returns copies of the credentials held, oldest first, private
// keys included: give one to another Authenticator's Import to clone it, or
// read SignCount.
func (a *Authenticator) Credentials() []Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Credential, len(a.creds))
	for i, c := range a.creds {
		out[i] = c.clone()
	}
	return out
}

// Forget deletes the credential with this id, as a user removing a passkey
// from the device does, and reports whether it was held.
func (a *Authenticator) Forget(id []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := len(a.creds)
	a.creds = slices.DeleteFunc(a.creds, func(c *Credential) bool { return bytes.Equal(c.ID, id) })
	return len(a.creds) != n
}

// Import adds a copy of c (typically from another Authenticator's
// Credentials), replacing a held credential with the same id. The copy keeps
// its own counter from then on, so two Authenticators holding one key behave
// as a cloned authenticator whose counters diverge.
func (a *Authenticator) Import(c Credential) error {
	if len(c.ID) == 0 || c.RPID == "" || len(c.UserHandle) == 0 {
		return errors.New("webauthntest: import needs ID, RPID and UserHandle")
	}
	if c.PrivateKey == nil || c.PrivateKey.Curve != elliptic.P256() {
		return errors.New("webauthntest: import needs a P-256 private key")
	}
	cp := c.clone()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.creds = slices.DeleteFunc(a.creds, func(h *Credential) bool { return bytes.Equal(h.ID, c.ID) })
	a.creds = append(a.creds, &cp)
	return nil
}

// clone copies the byte slices so that callers cannot reach into the
// Authenticator; the key is shared, as nothing mutates it.
func (c *Credential) clone() Credential {
	cp := *c
	cp.ID = bytes.Clone(c.ID)
	cp.UserHandle = bytes.Clone(c.UserHandle)
	return cp
}

// Authenticator data flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

// coseAlgES256 is the COSE algorithm id of ECDSA P-256 with SHA-256.
const coseAlgES256 = -7

// flags are the flags every ceremony of c carries, before per-call changes.
func (c *Credential) flags() byte {
	f := byte(flagUP | flagUV)
	if c.Backup {
		f |= flagBE | flagBS
	}
	return f
}

// authenticatorData lays out rpIdHash || flags || signCount || attested
// (WebAuthn §6.1), applying WithRPID and WithoutUserVerification.
func authenticatorData(s settings, rpID string, flags byte, count uint32, attested []byte) []byte {
	if s.rpID != nil {
		rpID = *s.rpID
	}
	if s.noUV {
		flags &^= flagUV
	}
	out := sha256Sum([]byte(rpID))
	out = append(out, flags)
	out = binary.BigEndian.AppendUint32(out, count)
	return append(out, attested...)
}

// clientDataJSON serialises CollectedClientData the way browsers do: members
// in this order, the challenge re-encoded as unpadded base64url, crossOrigin
// false (a top-level page, not an iframe).
func clientDataJSON(typ string, challenge []byte, origin string) ([]byte, error) {
	return json.Marshal(struct {
		Type        string `json:"type"`
		Challenge   string `json:"challenge"`
		Origin      string `json:"origin"`
		CrossOrigin bool   `json:"crossOrigin"`
	}{typ, base64.RawURLEncoding.EncodeToString(challenge), origin, false})
}

// ctap2 encodes CBOR in CTAP2 canonical form (sorted map keys, definite
// lengths), the form authenticators emit and strict decoders expect.
var ctap2 = func() cbor.EncMode {
	m, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	return m
}()

// publicKeys returns the key as a COSE_Key (EC2: kty 2, alg -7, crv 1, x, y;
// RFC 9053 §7.1.1), which goes in the attested credential data, and as
// SubjectPublicKeyInfo DER, which Level 3 browsers add as response.publicKey.
func publicKeys(pub *ecdsa.PublicKey) (cose, spki []byte, err error) {
	point, err := pub.Bytes() // 0x04 || x || y, each 32 bytes
	if err != nil {
		return nil, nil, err
	}
	cose, err = ctap2.Marshal(map[int]any{
		1:  2,            // kty: EC2
		3:  coseAlgES256, // alg: ES256
		-1: 1,            // crv: P-256
		-2: point[1:33],  // x
		-3: point[33:],   // y
	})
	if err != nil {
		return nil, nil, err
	}
	spki, err = x509.MarshalPKIXPublicKey(pub)
	return cose, spki, err
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// b64 is a binary member of WebAuthn's JSON forms: unpadded base64url. It
// decodes padded input too, as lenient clients do.
type b64 []byte

func (b b64) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.RawURLEncoding.EncodeToString(b))
}

func (b *b64) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return fmt.Errorf("not base64url: %q", s)
	}
	*b = raw
	return nil
}

// descriptor is a PublicKeyCredentialDescriptor of excludeCredentials or
// allowCredentials.
type descriptor struct {
	ID b64 `json:"id"`
}

// unmarshalOptions decodes options, unwrapping {"publicKey": ...} when the
// relying party sent the whole CredentialCreationOptions object.
func unmarshalOptions(data []byte, v any) error {
	var wrapped struct {
		PublicKey json.RawMessage `json:"publicKey"`
	}
	if err := json.Unmarshal(data, &wrapped); err != nil {
		return err
	}
	if len(wrapped.PublicKey) != 0 {
		data = wrapped.PublicKey
	}
	return json.Unmarshal(data, v)
}
