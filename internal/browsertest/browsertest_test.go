package browsertest

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// page is all the self-test needs: a document on a secure origin.
const page = `<!doctype html><html lang="en"><title>browsertest</title><p>ready</p></html>`

// ceremony registers a discoverable credential with fixed options, then
// asks for an assertion without naming a credential (as a passkey login
// does), and reports what the browser answered.
const ceremony = `(async () => {
	const enc = new TextEncoder(), dec = new TextDecoder();
	const created = await navigator.credentials.create({publicKey: {
		rp: {id: "localhost", name: "Tessera browsertest"},
		user: {id: enc.encode("user-1"), name: "ada@example.com", displayName: "Ada"},
		challenge: enc.encode("registration challenge, 32 bytes"),
		pubKeyCredParams: [{type: "public-key", alg: -7}],
		authenticatorSelection: {residentKey: "required", userVerification: "required"},
		attestation: "none",
		timeout: 10000,
	}});
	const asserted = await navigator.credentials.get({publicKey: {
		rpId: "localhost",
		challenge: enc.encode("login challenge, also 32 bytes.."),
		userVerification: "required",
		timeout: 10000,
	}});
	const client = JSON.parse(dec.decode(asserted.response.clientDataJSON));
	return {
		createdId: created.id,
		attachment: created.authenticatorAttachment,
		createType: JSON.parse(dec.decode(created.response.clientDataJSON)).type,
		assertedId: asserted.id,
		getType: client.type,
		origin: client.origin,
		userHandle: dec.decode(asserted.response.userHandle),
		flags: new Uint8Array(asserted.response.authenticatorData)[32],
	};
})()`

type ceremonyResult struct {
	CreatedID  string `json:"createdId"`
	Attachment string `json:"attachment"`
	CreateType string `json:"createType"`
	AssertedID string `json:"assertedId"`
	GetType    string `json:"getType"`
	Origin     string `json:"origin"`
	UserHandle string `json:"userHandle"`
	Flags      int    `json:"flags"`
}

func TestVirtualAuthenticator(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	// localhost is a secure context, so WebAuthn works over plain http;
	// 127.0.0.1 is one too, but is not a valid RP ID.
	origin := strings.Replace(srv.URL, "127.0.0.1", "localhost", 1)

	began := time.Now()
	ctx := Start(t)
	started := time.Now()

	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/")); err != nil {
		t.Fatal(err)
	}
	id, err := AddVirtualAuthenticator(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Run(ctx, chromedp.Evaluate[ceremonyResult](ceremony, chromedp.EvalAwaitPromise, userGesture))
	if err != nil {
		t.Fatalf("navigator.credentials: %v", err)
	}
	t.Logf("chromium start %v, ceremonies %v", started.Sub(began).Round(time.Millisecond), time.Since(started).Round(time.Millisecond))

	if res.CreateType != "webauthn.create" || res.GetType != "webauthn.get" {
		t.Errorf("clientDataJSON types %q, %q", res.CreateType, res.GetType)
	}
	if res.Origin != origin {
		t.Errorf("origin %q, want %q", res.Origin, origin)
	}
	if res.Attachment != "platform" {
		t.Errorf("authenticatorAttachment %q, want platform", res.Attachment)
	}
	if res.AssertedID != res.CreatedID || res.UserHandle != "user-1" {
		t.Errorf("asserted %q for user %q, want %q for user-1", res.AssertedID, res.UserHandle, res.CreatedID)
	}
	const up, uv = 0x01, 0x04
	if res.Flags&(up|uv) != up|uv {
		t.Errorf("authenticator data flags %#x: want UP and UV", res.Flags)
	}

	creds, err := Credentials(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 1 {
		t.Fatalf("authenticator holds %d credentials, want 1", len(creds))
	}
	c := creds[0]
	if !c.IsResidentCredential || c.RpID != "localhost" || string(c.UserHandle) != "user-1" {
		t.Errorf("credential resident=%v rpId=%q userHandle=%q", c.IsResidentCredential, c.RpID, c.UserHandle)
	}
	if got := base64.RawURLEncoding.EncodeToString(c.CredentialID); got != res.CreatedID {
		t.Errorf("credential id %s, the browser said %s", got, res.CreatedID)
	}
	t.Logf("sign count after one assertion: %v", c.SignCount)
}

// userGesture runs the script as if the user had clicked.
func userGesture(p *runtime.EvaluateParams) {
	v := true
	p.UserGesture = &v
}

func TestExecPathFromEnv(t *testing.T) {
	t.Setenv(ChromiumEnv, "/nonexistent/chromium")
	if p, err := ExecPath(); err == nil {
		t.Fatalf("ExecPath() = %q with %s pointing nowhere", p, ChromiumEnv)
	}
}
