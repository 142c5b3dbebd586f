// Package e2e_test drives a whole Tessera from a real browser. It is a
// package of its own so that the browser's client (chromedp and the
// DevTools protocol, a large dependency) is linked only into these tests.
package e2e_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/browsertest"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/password"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// server is a whole Tessera on SQLite, serving at origin
// (http://localhost:PORT), which is also its WebAuthn origin.
type server struct {
	app    *app.App
	origin string
	inbox  *deliver.Inbox // the development inbox
}

func startServer(t *testing.T) *server {
	t.Helper()
	// The browser calls the page's origin, which must be the relying
	// party's: take the port first.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{origin: fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port), inbox: deliver.NewInbox(deliver.DefaultInboxSize, nil)}
	key := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	keys, err := secret.NewKeyring(key(), []secret.Key{{ID: "k1", Key: key()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Messages are read from the development inbox, not the log.
	sender := deliver.NewLogSender(io.Discard)
	s.app = app.New(app.Options{
		Store: storetest.OpenSQLite(t), Keys: keys, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Senders:        map[tessera.Channel]tessera.Sender{tessera.ChannelEmail: sender, tessera.ChannelSMS: sender},
		PasswordParams: password.Params{Memory: 64, Time: 1, Threads: 1},
		WebAuthnRPID:   "localhost", WebAuthnOrigins: []string{s.origin},
		// The development inbox, where the journey reads its codes, and
		// an app on this origin that a login may return to.
		DevInbox:   s.inbox,
		ReturnURLs: []string{s.origin + AppCallback},
	})
	if err := s.app.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The outbox worker delivers as in serve: to the inbox, at once.
	ctx, stop := context.WithCancel(context.Background())
	wait := s.app.RunBackground(ctx)
	t.Cleanup(func() { stop(); wait() })
	srv := httptest.NewUnstartedServer(s.app.HTTP)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return s
}

// delivered runs the outbox worker and returns the subjects and bodies of
// everything sent so far.
func (s *server) delivered(t *testing.T) string {
	t.Helper()
	s.app.Accounts.Drain()
	if _, err := s.app.Worker.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range s.inbox.Messages() {
		b.WriteString(m.Subject + "\n" + m.Body + "\n")
	}
	return b.String()
}

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
			s := startServer(t)
			const email, pw = "ana@example.com", "correct horse battery"
			u, err := s.app.Accounts.CreateUser(context.Background(), email, pw)
			if err != nil {
				t.Fatal(err)
			}

			ctx, closeTab := chromedp.NewContext(browser)
			defer closeTab()
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			if err := chromedp.Do(ctx, chromedp.Navigate(s.origin+"/ui/passkeys")); err != nil {
				t.Fatal(err)
			}
			if st := browsertest.Await(t, ctx, "load"); st.State != "ok" {
				t.Fatalf("the page did not load: %+v", st)
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

			browsertest.Fill(t, ctx, email, "not the password")
			if st := browsertest.Act(t, ctx, "#login", "login"); st.State != "error" || st.Code != "unauthorized" {
				t.Fatalf("a wrong password: %+v", st)
			}
			browsertest.Fill(t, ctx, email, pw)
			if st := browsertest.Act(t, ctx, "#login", "login"); st.State != "ok" || !strings.Contains(st.Text, "acr=aal1") {
				t.Fatalf("a password login: %+v", st)
			}
			if st := browsertest.Act(t, ctx, "#add-passkey", "add-passkey"); st.State != "ok" {
				t.Fatalf("adding a passkey: %+v", st)
			}
			creds, err := browsertest.Credentials(ctx, authenticator)
			if err != nil {
				t.Fatal(err)
			}
			if len(creds) != 1 || !creds[0].IsResidentCredential || string(creds[0].UserHandle) != u.ID {
				t.Fatalf("the authenticator holds %+v", creds)
			}
			if !strings.Contains(s.delivered(t), "passkey was added") {
				t.Fatal("no notice of the new passkey was sent")
			}

			// Signing in with the passkey alone: no email typed.
			st := browsertest.Act(t, ctx, "#passkey-login", "passkey-login")
			if st.State != "ok" || !strings.Contains(st.Text, "acr=aal2") || !strings.Contains(st.Text, "hwk") {
				t.Fatalf("a passkey login: %+v", st)
			}
			logins, err := s.app.Store.AuditEvents(context.Background(), tessera.AuditFilter{Kind: tessera.AuditLoginSuccess})
			if err != nil {
				t.Fatal(err)
			}
			if len(logins) == 0 || logins[0].Detail != "passkey" || !strings.HasPrefix(logins[0].UserAgent, "Mozilla/") { // newest first
				t.Fatalf("the passkey login is not audited as the browser's: %+v", logins)
			}
		})
	}
}
