package httpapi_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/browsertest"
)

// TestPasskeyInABrowser is a person with headless Chromium and a passkey
// provider (the DevTools virtual authenticator: internal transport,
// resident keys, user verification): on Tessera's own page, against the
// real server, they sign in with their password, add a passkey, and sign
// in with the passkey alone. It runs with the browser's
// PublicKeyCredential.toJSON, and without it (the page's own encoding,
// for browsers that lack it).
func TestPasskeyInABrowser(t *testing.T) {
	browser := browsertest.Start(t)
	for _, toJSON := range []bool{true, false} {
		t.Run(map[bool]string{true: "toJSON", false: "without toJSON"}[toJSON], func(t *testing.T) {
			// The browser calls the page's origin, http://localhost:PORT,
			// which must be the relying party's: take the port first.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			origin := fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
			e := newEnvOn(t, stores[0].open(t), ln, func(o *app.Options) {
				o.WebAuthnRPID, o.WebAuthnOrigins = "localhost", []string{origin}
			})
			u := register(t, e, "ana@example.com")

			ctx, closeTab := chromedp.NewContext(browser)
			defer closeTab()
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/ui/passkeys")); err != nil {
				t.Fatal(err)
			}
			if s := browsertest.Await(t, ctx, "load"); s.State != "ok" {
				t.Fatalf("the page did not load: %+v", s)
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

			browsertest.Fill(t, ctx, u.email, "not the password")
			if s := browsertest.Act(t, ctx, "#login", "login"); s.State != "error" || s.Code != "unauthorized" {
				t.Fatalf("a wrong password: %+v", s)
			}
			browsertest.Fill(t, ctx, u.email, u.password)
			if s := browsertest.Act(t, ctx, "#login", "login"); s.State != "ok" || !strings.Contains(s.Text, "acr=aal1") {
				t.Fatalf("a password login: %+v", s)
			}
			if s := browsertest.Act(t, ctx, "#add-passkey", "add-passkey"); s.State != "ok" {
				t.Fatalf("adding a passkey: %+v", s)
			}
			creds, err := browsertest.Credentials(ctx, authenticator)
			if err != nil {
				t.Fatal(err)
			}
			if len(creds) != 1 || !creds[0].IsResidentCredential || string(creds[0].UserHandle) != userID(t, e, u.email) {
				t.Fatalf("the authenticator holds %+v", creds)
			}
			noticeTo(t, e, u.email, "passkey was added")

			// Signing in with the passkey alone: no email typed.
			s := browsertest.Act(t, ctx, "#passkey-login", "passkey-login")
			if s.State != "ok" || !strings.Contains(s.Text, "acr=aal2") || !strings.Contains(s.Text, "hwk") {
				t.Fatalf("a passkey login: %+v", s)
			}
			logins := auditOf(t, e, tessera.AuditFilter{Kind: tessera.AuditLoginSuccess}) // oldest first
			if last := logins[len(logins)-1]; last.Detail != "passkey" || !strings.HasPrefix(last.UserAgent, "Mozilla/") {
				t.Fatalf("the passkey login is not audited as the browser's: %+v", last)
			}
		})
	}
}

// userID is the id of the account of email: a passkey's user handle.
func userID(t *testing.T, e *env, email string) string {
	t.Helper()
	u, err := e.app.Store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}
