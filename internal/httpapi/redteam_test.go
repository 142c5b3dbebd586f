package httpapi_test

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/deliver"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// Attacks on the surfaces that landed together: the hosted pages' cookie
// and CSRF tokens, the development inbox, the handoff, the admin API, ID
// tokens, the phone fallback. Each test is the attack as the attacker
// runs it; it passes when the attack fails.

// longKeyID is an HMAC key id as an operator may name a rotated key (ids
// up to 32 characters are allowed). Every stored hash carries it, so it
// is no secret.
const longKeyID = "rotated-2026-11-29-hmac"

// longKeyIDKeys is a keyring whose HMAC key has longKeyID.
func longKeyIDKeys(t *testing.T) *secret.Keyring {
	t.Helper()
	key := func() []byte { b := make([]byte, 32); rand.Read(b); return b }
	keys, err := secret.New([]secret.Key{{ID: longKeyID, Key: key()}}, []secret.Key{{ID: "k1", Key: key()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// TestRedteamPageCookieFromSessionID: the page session cookie is the
// session id and a MAC of it; the CSRF token, a MAC of the browser's
// CSRF cookie, session and flow. Both MACs were cut from the stored form
// of a hash, which starts with the HMAC key's id: with an id of 17
// characters or more the "MAC" held no secret byte at all. Whoever knew
// a session id (the sid claim of any ID token: every app that receives
// one, every log that keeps one) then signed in to the pages as its user
// for the session's whole life, and any site could post the pages'
// forms. The attacker here has a stolen ID token and the key's id.
func TestRedteamPageCookieFromSessionID(t *testing.T) {
	e := newEnvWith(t, stores[0].open(t), func(o *app.Options) { o.Keys = longKeyIDKeys(t); o.ReturnURLs = []string{appReturn} })
	victim := register(t, e, "cookie-victim@example.com")
	sid, _ := claimsOf(t, e, victim.idToken)["sid"].(string)
	if sid == "" {
		t.Fatal("the ID token has no sid")
	}
	tag := append([]byte{byte(len(longKeyID))}, longKeyID...)

	b := newBrowser(t, e)
	base, _ := url.Parse(e.srv.URL)
	b.c.Jar.SetCookies(base, []*http.Cookie{{Name: "tessera-session", Value: sid + "." + base64.RawURLEncoding.EncodeToString(tag[:18]), Path: "/"}})
	res, body := b.get("/account/settings")
	if res.StatusCode == http.StatusOK {
		t.Fatalf("a cookie forged from the session id signs in to the settings:\n%s", body)
	}

	// Cross-site: the victim is signed in on the pages; the attacker's
	// page posts the password change with a token it made up.
	const pw = "correct horse battery"
	vb := loginBrowser(t, e, victim.email, pw)
	res, body = vb.post("/account/settings/password", url.Values{
		"csrf": {base64.RawURLEncoding.EncodeToString(tag[:24])}, "old-password": {pw}, "new-password": {"attacker's password"},
	})
	wantStatus(t, res, body, http.StatusForbidden)
}

// TestRedteamDevInboxFromOutside: the development inbox shows every code
// in clear text and is on by default on a loopback address, on the
// assumption that only this machine reaches it. Two ways around that:
// a reverse proxy on the same machine (loopback is then reachable from
// anywhere; the proxy says so in X-Forwarded-For or Forwarded), and DNS
// rebinding (a site the developer visits rebinds its own name to
// 127.0.0.1; the browser then sends that name as Host). Either way a
// stranger reads the codes of every account and every API client.
func TestRedteamDevInboxFromOutside(t *testing.T) {
	e := newInboxEnv(t)
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "dev@example.com"}).want(t, 200)
	e.deliver()

	if status, body := inboxFrom(t, e, "", nil); status != http.StatusOK || !strings.Contains(body, "dev@example.com") {
		t.Fatalf("the developer's own request: %d %s", status, body)
	}
	if status, _ := inboxFrom(t, e, "localhost:8080", nil); status != http.StatusOK {
		t.Fatalf("Host localhost: %d", status)
	}
	for _, c := range []struct {
		name    string
		host    string
		headers map[string]string
	}{
		{"through a proxy (X-Forwarded-For)", "", map[string]string{"X-Forwarded-For": "203.0.113.9"}},
		{"through a proxy (Forwarded)", "", map[string]string{"Forwarded": "for=203.0.113.9;host=auth.example.com"}},
		{"through a proxy (X-Real-IP)", "", map[string]string{"X-Real-IP": "203.0.113.9"}},
		{"through a proxy (public Host)", "auth.example.com", nil},
		{"DNS rebinding", "rebind.attacker.example:8080", nil},
	} {
		if status, body := inboxFrom(t, e, c.host, c.headers); status != http.StatusNotFound || strings.Contains(body, "dev@example.com") {
			t.Errorf("%s: %d %s", c.name, status, body)
		}
	}

	// Asked for (TESSERA_DEV_INBOX=1, a shared staging server behind its
	// proxy): the operator chose to show it to whoever reaches it.
	asked := newEnvWith(t, storetest.OpenSQLite(t), func(o *app.Options) {
		o.DevInbox = deliver.NewInbox(deliver.DefaultInboxSize, o.Now)
		o.DevInbox.Anywhere = true
	})
	if status, _ := inboxFrom(t, asked, "staging.example.com", map[string]string{"X-Forwarded-For": "203.0.113.9"}); status != http.StatusOK {
		t.Errorf("an inbox asked for, through its proxy: %d", status)
	}
}

// inboxFrom GETs /dev/inbox.json with Host host (unless empty) and headers.
func inboxFrom(t *testing.T, e *env, host string, headers map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/dev/inbox.json", nil)
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	e.violations.LoadAndDelete(res.Header.Get("X-Request-Id"))
	return res.StatusCode, string(body)
}

// TestRedteamAdminBadBytes: NUL and invalid UTF-8 in an admin API path
// or filter reached PostgreSQL, which refuses them in a text column: 500
// where a lookup finds nothing (404) or a filter is invalid (422).
func TestRedteamAdminBadBytes(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		a := newAdmin(t, e)
		for _, c := range []struct {
			method, path string
			status       int
		}{
			{"GET", "/admin/users/%00", 404},
			{"GET", "/admin/users/a%00b@example.com", 404},
			{"POST", "/admin/users/%ff/disable", 404},
			{"DELETE", "/admin/users/%ff", 404},
			{"DELETE", "/admin/users/%00/sessions", 404},
			{"POST", "/admin/users/%ff%00/mfa/reset", 404},
			{"GET", "/admin/users?email=%00", 422},
			{"GET", "/admin/users?phone=%2B1%00", 422},
			{"GET", "/admin/users?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("123.\x00")), 422},
			{"GET", "/admin/users?cursor=" + base64.RawURLEncoding.EncodeToString([]byte("123.\xff")), 422},
		} {
			if r := a.call(c.method, c.path, nil); r.status != c.status {
				t.Errorf("%s %s: %d, want %d: %s", c.method, c.path, r.status, c.status, r.raw)
			}
		}
	})
}

// TestRedteamCookieBehindProxyKeepingLoopbackHost: a TLS-terminating
// proxy that passes on its upstream's address as Host (nginx's default
// proxy_pass does: "Host: 127.0.0.1:8080") made every browser's cookies
// plain "tessera-session" without Secure: sent over plain HTTP to the
// public name, where a network attacker reads the page session, and open
// to cookie tossing from a sibling domain. The proxy says the browser
// used https; a request that says so gets Secure, __Host- cookies.
func TestRedteamCookieBehindProxyKeepingLoopbackHost(t *testing.T) {
	e := pagesEnv(t, stores[0].open(t))
	for _, h := range []map[string]string{{"X-Forwarded-Proto": "https"}, {"Forwarded": "for=203.0.113.9;proto=https;host=login.example.com"}} {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/account/login", nil)
		for k, v := range h {
			req.Header.Set(k, v)
		}
		res, _ := newBrowser(t, e).do(req)
		var c *http.Cookie
		for _, k := range res.Cookies() {
			if strings.HasSuffix(k.Name, "tessera-csrf") {
				c = k
			}
		}
		if c == nil || c.Name != "__Host-tessera-csrf" || !c.Secure {
			t.Errorf("%v: CSRF cookie %+v, want __Host-tessera-csrf, Secure", h, c)
		}
	}
}

// TestRedteamIDTokenAlgConfusion: a stolen ID token's claims re-signed by
// the attacker: with alg none, with HS256 under the published public key
// (the classic confusion), and with a kid that names no key. Each is
// refused; only what the server signed passes.
func TestRedteamIDTokenAlgConfusion(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "alg@example.com")
	parts := strings.Split(u.idToken, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %s", u.idToken)
	}
	kid := kidOf(t, u.idToken)
	pub := fetchJWKS(t, e).Keys[0]
	pubJSON, _ := pub.MarshalJSON()
	enc := base64.RawURLEncoding
	header := func(alg, kid string) string {
		return enc.EncodeToString([]byte(`{"alg":"` + alg + `","kid":"` + kid + `","typ":"JWT"}`))
	}
	hs := func(h string, key []byte) string {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(h + "." + parts[1]))
		return h + "." + parts[1] + "." + enc.EncodeToString(m.Sum(nil))
	}
	edPub, ok := pub.Key.(ed25519.PublicKey)
	if !ok {
		t.Fatalf("the JWKS key is %T, want Ed25519", pub.Key)
	}
	for name, forged := range map[string]string{
		"alg none":                       header("none", kid) + "." + parts[1] + ".",
		"HS256 under the raw public key": hs(header("HS256", kid), edPub),
		"HS256 under the JWK":            hs(header("HS256", kid), pubJSON),
		"kid of no key":                  header("EdDSA", "../../../dev/null") + "." + parts[1] + "." + parts[2],
	} {
		if r := e.doWith("GET", "/auth/me", nil, map[string]string{"Authorization": "Bearer " + forged}); r.status != http.StatusUnauthorized {
			t.Errorf("%s: %d %s", name, r.status, r.raw)
		}
	}
	u.call("GET", "/auth/me", nil).want(t, 200)
}

// TestRedteamDisableEndsPagesHandoffAndPendingLogins: the admin disables
// an account that is mid-way everywhere: signed in on the pages, a
// handoff code on its way to the app, a login waiting for its second
// factor. None of them may still produce a session, not even after the
// account is enabled again.
func TestRedteamDisableEndsPagesHandoffAndPendingLogins(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			disableMidWay(t, pagesEnv(t, st.open(t)))
		})
	}
}

func disableMidWay(t *testing.T, e *env) {
	// Turning MFA on ends the other sessions, so the page session and
	// the handoff are one account's, the pending login another's.
	const email, pw = "disable-me@example.com", "correct horse battery"
	browser := signUp(t, e, email, pw)
	code := loginReturning(t, e, email, pw, appReturn)
	if res, body := browser.get("/account/settings"); res.StatusCode != http.StatusOK {
		t.Fatalf("before: the page session is not signed in: %d\n%s", res.StatusCode, body)
	}
	u := register(t, e, "disable-me-too@example.com")
	secret, recovery := enrolTOTP(t, e, u)
	e.clock.Advance(30 * time.Second)
	pending := mfaChallenge(t, u).str("processingId")

	a := newAdmin(t, e)
	setStatus := func(action string) {
		for _, who := range []string{email, u.email} {
			a.call("POST", "/admin/users/"+url.PathEscape(who)+"/"+action, nil).want(t, 200)
		}
	}
	signedOut := func(when string) {
		t.Helper()
		if res, body := browser.get("/account/settings"); res.StatusCode == http.StatusOK {
			t.Fatalf("%s: the page session still shows the settings:\n%s", when, body)
		}
		if r := e.do("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": appReturn}); r.status < 400 || r.status >= 500 || r.str("idToken") != "" {
			t.Fatalf("%s: the handoff code: %s", when, r.raw)
		}
		for _, c := range []map[string]any{
			{"processingId": pending, "method": "totp", "code": totpCode(secret, e.clock.Now())},
			{"processingId": pending, "method": "recovery_code", "code": recovery[0]},
		} {
			if r := e.doWith("POST", "/auth/login/mfa", c, nil); r.status < 400 || r.status >= 500 || r.str("idToken") != "" {
				t.Fatalf("%s: the pending login (%s): %s", when, c["method"], r.raw)
			}
		}
	}
	setStatus("disable")
	signedOut("disabled")
	setStatus("enable")
	signedOut("enabled again")
}

// TestRedteamHandoffRace: a handoff code leaked to several parties (a
// proxy log, a browser extension) is exchanged by all of them at once:
// exactly one gets the tokens.
func TestRedteamHandoffRace(t *testing.T) {
	for _, st := range stores {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			e := pagesEnv(t, st.open(t))
			const email, pw = "race-handoff@example.com", "correct horse battery"
			signUp(t, e, email, pw)
			code := loginReturning(t, e, email, pw, appReturn)
			const n = 8
			statuses := make(chan int, n)
			var wg sync.WaitGroup
			for range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := e.doWith("POST", "/auth/exchange", map[string]string{"code": code, "returnUrl": appReturn}, nil)
					statuses <- r.status
				}()
			}
			wg.Wait()
			close(statuses)
			won := 0
			for s := range statuses {
				switch {
				case s == http.StatusOK:
					won++
				case s != http.StatusUnprocessableEntity:
					t.Errorf("an exchange answered %d", s)
				}
			}
			if won != 1 {
				t.Fatalf("%d of %d parallel exchanges got tokens, want exactly 1", won, n)
			}
		})
	}
}

// TestRedteamNoFallbackForFinishedVerification: a WhatsApp message that
// fails for good falls back to a call, the dearest channel. The outbox
// did so even when the verification no longer wanted its code (the
// client deleted it, or it expired while the message was retried), as a
// provider's undelivered report never does: calls paid for nothing.
func TestRedteamNoFallbackForFinishedVerification(t *testing.T) {
	onEachStoreWith(t, func(t *testing.T, s app.Storage) (*env, *fakeTwilioChannels) {
		e, tw := newChannelsEnv(t, s, nil)
		tw.refuse = func(s twilioSend) (int, string) {
			if strings.HasPrefix(s.To, "whatsapp:") {
				return 400, `{"code":63007,"message":"Twilio could not find a Channel with the specified From address","status":400}`
			}
			return 0, ""
		}
		return e, tw
	}, func(t *testing.T, e *env, tw *fakeTwilioChannels) {
		calls := func() (n int) {
			for _, s := range tw.sends() {
				if s.API == "Calls" {
					n++
				}
			}
			return n
		}
		id := e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552671", "fallback": []string{"call"}}).want(t, 200).str("verificationId")
		e.do("DELETE", "/methods/whatsapp/verifiers/"+id, nil).want(t, 200)
		e.deliverAll()
		if n := calls(); n != 0 {
			t.Fatalf("a deleted verification's code was read out in %d calls", n)
		}
		e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552672", "fallback": []string{"call"}}).want(t, 200)
		e.clock.Advance(2 * time.Hour)
		e.deliverAll()
		if n := calls(); n != 0 {
			t.Fatalf("an expired verification's code was read out in %d calls", n)
		}
		// Still waiting for its code: the call goes out.
		e.do("POST", "/methods/whatsapp/actions/initiate", map[string]any{"consumer": "+14155552673", "fallback": []string{"call"}}).want(t, 200)
		e.deliverAll()
		if n := calls(); n != 1 {
			t.Fatalf("%d calls for a verification that waits for its code, want 1", n)
		}
	})
}
