package web

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/tessera-id/tessera/internal/browsertest"
)

var b64 = base64.RawURLEncoding

// fakeAPI answers the five calls of the page as Tessera is to, and checks
// what the browser sends: the WebAuthn client data (type, challenge,
// origin), the public key of the new credential, and the assertion's
// signature with it. Any check that fails answers 400 "fake_check", which
// the page shows in #status.
type fakeAPI struct {
	origin string
	// keyFromAttestation: the page sends the credential's public key
	// (toJSON's response.publicKey); without it the test sets publicKey.
	keyFromAttestation bool

	mu             sync.Mutex
	idToken        string
	regChallenge   []byte
	loginChallenge []byte
	credentialID   string
	publicKey      *ecdsa.PublicKey
}

const userHandle = "user-1"

func (f *fakeAPI) routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /auth/login", f.login)
	mux.HandleFunc("POST /auth/passkeys/registration/begin", f.registrationBegin)
	mux.HandleFunc("POST /auth/passkeys/registration/finish", f.registrationFinish)
	mux.HandleFunc("POST /auth/passkeys/login/begin", f.loginBegin)
	mux.HandleFunc("POST /auth/passkeys/login/finish", f.loginFinish)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writeJSON(w, status, map[string]any{"status": status, "error": fmt.Sprintf(format, args...), "code": code})
}

// read decodes the JSON body, checking the request as Tessera's API would.
func read(w http.ResponseWriter, r *http.Request, dst any) bool {
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "fake_check", "Content-Type %q", ct)
		return false
	}
	if err := json.NewDecoder(r.Body).Decode(dst); err != nil {
		writeError(w, http.StatusBadRequest, "fake_check", "body: %v", err)
		return false
	}
	return true
}

func token(acr string, amr ...string) string {
	payload, _ := json.Marshal(map[string]any{"sub": "user-1", "acr": acr, "amr": amr, "exp": time.Now().Add(time.Hour).Unix()})
	return b64.EncodeToString([]byte(`{"alg":"none"}`)) + "." + b64.EncodeToString(payload) + ".c2ln"
}

func challenge() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

func (f *fakeAPI) login(w http.ResponseWriter, r *http.Request) {
	var req struct{ Email, Password string }
	if !read(w, r, &req) {
		return
	}
	switch {
	case req.Email == "mfa@example.com":
		writeJSON(w, http.StatusOK, map[string]any{"mfaRequired": true, "processingId": "mfa-1", "methods": []string{"totp"}})
	case req.Email == "ada@example.com" && req.Password == "correct horse":
		f.mu.Lock()
		f.idToken = token("aal1", "pwd")
		writeJSON(w, http.StatusOK, map[string]any{"idToken": f.idToken, "refreshToken": "r1", "idTokenExpiresAt": time.Now().Add(time.Hour)})
		f.mu.Unlock()
	default:
		writeError(w, http.StatusUnauthorized, "unauthorized", "Invalid email or password")
	}
}

func (f *fakeAPI) authorized(w http.ResponseWriter, r *http.Request) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idToken == "" || r.Header.Get("Authorization") != "Bearer "+f.idToken {
		writeError(w, http.StatusUnauthorized, "unauthorized", "No valid ID token")
		return false
	}
	return true
}

func (f *fakeAPI) registrationBegin(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !f.authorized(w, r) || !read(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regChallenge = challenge()
	// As go-webauthn writes PublicKeyCredentialCreationOptions.
	writeJSON(w, http.StatusOK, map[string]any{
		"processingId": "reg-1",
		"publicKey": map[string]any{
			"rp":        map[string]any{"name": "Tessera", "id": "localhost"},
			"user":      map[string]any{"name": "ada@example.com", "displayName": "ada@example.com", "id": b64.EncodeToString([]byte(userHandle))},
			"challenge": b64.EncodeToString(f.regChallenge),
			"pubKeyCredParams": []map[string]any{
				{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -257},
			},
			"timeout": 60000,
			// A credential of another authenticator, to exercise the
			// conversion of the list.
			"excludeCredentials": []map[string]any{{"type": "public-key", "id": b64.EncodeToString([]byte("some other credential"))}},
			"authenticatorSelection": map[string]any{
				"residentKey": "required", "requireResidentKey": true, "userVerification": "required",
			},
			"attestation": "none",
			"extensions":  map[string]any{"credProps": true},
		},
	})
}

// credentialJSON is the PublicKeyCredential as the page posts it.
type credentialJSON struct {
	ID                      string `json:"id"`
	RawID                   string `json:"rawId"`
	Type                    string `json:"type"`
	AuthenticatorAttachment string `json:"authenticatorAttachment"`
	Response                struct {
		ClientDataJSON     string   `json:"clientDataJSON"`
		AttestationObject  string   `json:"attestationObject"`
		Transports         []string `json:"transports"`
		PublicKey          string   `json:"publicKey"`
		PublicKeyAlgorithm int      `json:"publicKeyAlgorithm"`
		AuthenticatorData  string   `json:"authenticatorData"`
		Signature          string   `json:"signature"`
		UserHandle         *string  `json:"userHandle"`
	} `json:"response"`
	ClientExtensionResults map[string]any `json:"clientExtensionResults"`
}

// checkClientData checks the client data of a ceremony and returns its
// raw bytes.
func (f *fakeAPI) checkClientData(c *credentialJSON, typ string, challenge []byte) ([]byte, error) {
	if c.ID == "" || c.ID != c.RawID || c.Type != "public-key" {
		return nil, fmt.Errorf("id %q, rawId %q, type %q", c.ID, c.RawID, c.Type)
	}
	raw, err := b64.DecodeString(c.Response.ClientDataJSON)
	if err != nil {
		return nil, fmt.Errorf("clientDataJSON: %v", err)
	}
	var cd struct{ Type, Challenge, Origin string }
	if err := json.Unmarshal(raw, &cd); err != nil {
		return nil, fmt.Errorf("clientDataJSON: %v", err)
	}
	if cd.Type != typ || cd.Challenge != b64.EncodeToString(challenge) || cd.Origin != f.origin {
		return nil, fmt.Errorf("client data %+v", cd)
	}
	return raw, nil
}

func (f *fakeAPI) registrationFinish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string         `json:"processingId"`
		Name         string         `json:"name"`
		Credential   credentialJSON `json:"credential"`
	}
	if !f.authorized(w, r) || !read(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &req.Credential
	if req.ProcessingID != "reg-1" || req.Name != "This browser" {
		writeError(w, http.StatusBadRequest, "fake_check", "processingId %q, name %q", req.ProcessingID, req.Name)
		return
	}
	if _, err := f.checkClientData(c, "webauthn.create", f.regChallenge); err != nil {
		writeError(w, http.StatusBadRequest, "fake_check", "%v", err)
		return
	}
	if c.Response.AttestationObject == "" || c.AuthenticatorAttachment != "platform" || strings.Join(c.Response.Transports, ",") != "internal" {
		writeError(w, http.StatusBadRequest, "fake_check", "attestationObject %d chars, attachment %q, transports %q",
			len(c.Response.AttestationObject), c.AuthenticatorAttachment, c.Response.Transports)
		return
	}
	f.credentialID = c.ID
	if !f.keyFromAttestation {
		if c.Response.PublicKey != "" {
			writeError(w, http.StatusBadRequest, "fake_check", "a publicKey without toJSON")
			return
		}
		writeJSON(w, http.StatusCreated, map[string]any{"id": "passkey-1", "name": req.Name})
		return
	}
	der, err := b64.DecodeString(c.Response.PublicKey)
	if err != nil {
		writeError(w, http.StatusBadRequest, "fake_check", "publicKey: %v", err)
		return
	}
	key, err := x509.ParsePKIXPublicKey(der)
	pub, ok := key.(*ecdsa.PublicKey)
	if err != nil || !ok || c.Response.PublicKeyAlgorithm != -7 {
		writeError(w, http.StatusBadRequest, "fake_check", "publicKey %T (%v), algorithm %d", key, err, c.Response.PublicKeyAlgorithm)
		return
	}
	f.publicKey = pub
	writeJSON(w, http.StatusCreated, map[string]any{"id": "passkey-1", "name": req.Name})
}

func (f *fakeAPI) loginBegin(w http.ResponseWriter, r *http.Request) {
	var req struct{}
	if !read(w, r, &req) {
		return
	}
	if r.Header.Get("Authorization") != "" {
		writeError(w, http.StatusBadRequest, "fake_check", "a passkey login sent an Authorization header")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loginChallenge = challenge()
	writeJSON(w, http.StatusOK, map[string]any{
		"processingId": "login-1",
		"publicKey": map[string]any{
			"challenge":        b64.EncodeToString(f.loginChallenge),
			"timeout":          60000,
			"rpId":             "localhost",
			"userVerification": "required",
		},
	})
}

func (f *fakeAPI) loginFinish(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ProcessingID string         `json:"processingId"`
		Credential   credentialJSON `json:"credential"`
	}
	if !read(w, r, &req) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	c := &req.Credential
	clientData, err := f.checkClientData(c, "webauthn.get", f.loginChallenge)
	if err != nil || req.ProcessingID != "login-1" {
		writeError(w, http.StatusBadRequest, "fake_check", "processingId %q: %v", req.ProcessingID, err)
		return
	}
	if c.ID != f.credentialID || c.Response.UserHandle == nil || *c.Response.UserHandle != b64.EncodeToString([]byte(userHandle)) {
		writeError(w, http.StatusBadRequest, "fake_check", "credential %q of user %v", c.ID, c.Response.UserHandle)
		return
	}
	authData, err1 := b64.DecodeString(c.Response.AuthenticatorData)
	sig, err2 := b64.DecodeString(c.Response.Signature)
	rpIDHash := sha256.Sum256([]byte("localhost"))
	if err1 != nil || err2 != nil || len(authData) < 37 || !bytes.Equal(authData[:32], rpIDHash[:]) || authData[32]&0x05 != 0x05 {
		writeError(w, http.StatusBadRequest, "fake_check", "authenticatorData %x: %v %v", authData, err1, err2)
		return
	}
	clientHash := sha256.Sum256(clientData)
	signed := sha256.Sum256(append(authData, clientHash[:]...))
	if !ecdsa.VerifyASN1(f.publicKey, signed[:], sig) {
		writeError(w, http.StatusUnauthorized, "fake_check", "the signature does not verify")
		return
	}
	f.idToken = token("aal2", "hwk", "user")
	writeJSON(w, http.StatusOK, map[string]any{"idToken": f.idToken, "refreshToken": "r2", "idTokenExpiresAt": time.Now().Add(time.Hour)})
}

// status is what #status says.
type status struct {
	Step  string `json:"step"`
	State string `json:"state"`
	Code  string `json:"code"`
	Text  string `json:"text"`
}

// await waits until the step has ended, in #status.
func await(t *testing.T, ctx context.Context, step string) status {
	t.Helper()
	s, err := browsertest.WaitFor[status](ctx, `(() => {
		const s = document.getElementById("status");
		if (s.dataset.step !== "`+step+`" || s.dataset.state === "busy") return null;
		return {step: s.dataset.step, state: s.dataset.state, code: s.dataset.code || "", text: s.textContent};
	})()`)
	if err != nil {
		t.Fatalf("waiting for the step %s: %v", step, err)
	}
	return s
}

// act clears #status, clicks the element and waits for the step to end.
func act(t *testing.T, ctx context.Context, selector, step string) status {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`(() => { const s = document.getElementById("status"); s.dataset.step = ""; s.dataset.state = ""; })()`),
		chromedp.Click(chromedp.CSS(selector)),
	); err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
	return await(t, ctx, step)
}

func fill(t *testing.T, ctx context.Context, email, password string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.SetValue(chromedp.ID("email"), email),
		chromedp.SetValue(chromedp.ID("password"), password),
	); err != nil {
		t.Fatal(err)
	}
}

// TestPageInBrowser drives the page in headless Chromium with a virtual
// authenticator, against fakeAPI: the errors it shows, a password login,
// adding a passkey and signing in with it. It runs twice: with the
// browser's PublicKeyCredential.toJSON, and with the page's own encoding
// that browsers without toJSON get.
func TestPageInBrowser(t *testing.T) {
	browser := browsertest.Start(t)
	for _, toJSON := range []bool{true, false} {
		name := map[bool]string{true: "toJSON", false: "without toJSON"}[toJSON]
		t.Run(name, func(t *testing.T) {
			ctx, closeTab := chromedp.NewContext(browser)
			defer closeTab()
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			pageInBrowser(t, ctx, toJSON)
		})
	}
}

func pageInBrowser(t *testing.T, ctx context.Context, toJSON bool) {
	mux := http.NewServeMux()
	Routes(func(pattern string, h http.HandlerFunc) { mux.HandleFunc(pattern, h) })
	api := &fakeAPI{keyFromAttestation: toJSON}
	api.routes(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	api.origin = strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	if err := chromedp.Do(ctx, chromedp.Navigate(api.origin+PagePath)); err != nil {
		t.Fatal(err)
	}
	if s := await(t, ctx, "load"); s.State != "ok" || s.Text != "Not signed in." {
		t.Fatalf("after loading: %+v", s)
	}
	if !toJSON {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`delete PublicKeyCredential.prototype.toJSON`)); err != nil {
			t.Fatal(err)
		}
	}
	authenticator, err := browsertest.AddVirtualAuthenticator(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if s := act(t, ctx, "#add-passkey", "add-passkey"); s.State != "error" || !strings.Contains(s.Text, "Sign in first") {
		t.Errorf("adding a passkey before signing in: %+v", s)
	}
	fill(t, ctx, "ada@example.com", "wrong")
	if s := act(t, ctx, "#login", "login"); s.State != "error" || s.Code != "unauthorized" ||
		s.Text != "Signing in failed: 401 unauthorized: Invalid email or password" {
		t.Errorf("a wrong password: %+v", s)
	}
	fill(t, ctx, "mfa@example.com", "correct horse")
	if s := act(t, ctx, "#login", "login"); s.State != "error" || s.Text != "MFA on: not supported on this page" {
		t.Errorf("an account with MFA: %+v", s)
	}
	fill(t, ctx, "ada@example.com", "correct horse")
	if s := act(t, ctx, "#login", "login"); s.State != "ok" || s.Text != "Signed in with a password: acr=aal1 amr=pwd" {
		t.Fatalf("a password login: %+v", s)
	}
	if s := act(t, ctx, "#add-passkey", "add-passkey"); s.State != "ok" || s.Text != "Passkey added: This browser" {
		t.Fatalf("adding a passkey: %+v", s)
	}
	creds, err := browsertest.Credentials(ctx, authenticator)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 || !creds[0].IsResidentCredential || string(creds[0].UserHandle) != userHandle ||
		b64.EncodeToString(creds[0].CredentialID) != api.credentialID {
		t.Fatalf("the authenticator holds %d credentials: %+v", len(creds), creds)
	}
	if !toJSON {
		// Without toJSON the page sends no publicKey, and fakeAPI reads
		// no CBOR: take the key from the authenticator.
		key, err := x509.ParsePKCS8PrivateKey(creds[0].PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		api.mu.Lock()
		api.publicKey = &key.(*ecdsa.PrivateKey).PublicKey
		api.mu.Unlock()
	}
	if s := act(t, ctx, "#passkey-login", "passkey-login"); s.State != "ok" || s.Text != "Signed in with a passkey: acr=aal2 amr=hwk,user" {
		t.Fatalf("a passkey login: %+v", s)
	}
	// The password is gone from the form, and no token was kept anywhere
	// but in the script's memory.
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`document.getElementById("password").value + localStorage.length + sessionStorage.length + document.cookie`))
	if err != nil || stored != "00" {
		t.Errorf("left behind: %q, %v", stored, err)
	}
}
