package httpapi_test

import (
	"strings"
	"testing"
	"time"
)

// messagesTo delivers pending messages and returns those sent to to.
func messagesTo(e *env, to string) []delivered {
	var out []delivered
	for _, m := range e.deliver() {
		if m.To == to {
			out = append(out, m)
		}
	}
	return out
}

// onlyMessageTo is the one message delivered to to.
func onlyMessageTo(t *testing.T, e *env, to string) delivered {
	t.Helper()
	msgs := messagesTo(e, to)
	if len(msgs) != 1 {
		t.Fatalf("%d messages to %s, want 1: %+v", len(msgs), to, msgs)
	}
	return msgs[0]
}

// A password reset asked for by a German browser reads as a password
// reset, in German, and its code resets the password.
func TestPasswordResetEmailInRequestLanguage(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "greta@example.com")
		ask := func(acceptLanguage string) (string, delivered) {
			t.Helper()
			r := e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL"},
				map[string]string{"Accept-Language": acceptLanguage}).want(t, 200)
			return r.str("processingId"), onlyMessageTo(t, e, u.email)
		}

		_, en := ask("")
		if en.Subject != "Reset your Tessera password" || !strings.Contains(en.Body, "password reset code is") {
			t.Fatalf("English reset email: %q / %q", en.Subject, en.Body)
		}
		e.clock.Advance(time.Minute) // past the send cooldown

		pid, de := ask("de-DE,de;q=0.9,en;q=0.5")
		if de.Subject != "Setzen Sie Ihr Tessera-Passwort zurück" || !strings.Contains(de.Body, "Code zum Zurücksetzen des Passworts lautet") ||
			!strings.Contains(de.Body, "30 Minuten") {
			t.Fatalf("German reset email: %q / %q", de.Subject, de.Body)
		}
		code := sixDigits.FindString(de.Body)
		e.doWith("POST", "/api/v1/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL", "processingId": pid,
			"oneTimeToken": code, "newPassword": "ein langes neues Passwort"}, map[string]string{"Accept-Language": "de"}).want(t, 200)
		// The notice of the reset speaks the language of the request too.
		if n := onlyMessageTo(t, e, u.email); n.Subject != "Tessera: Ihr Passwort wurde zurückgesetzt" {
			t.Fatalf("notice %q", n.Subject)
		}
	})
}

// Each code's email says what the code is for: no two purposes share a
// subject, and none is the old "Your Tessera code".
func TestCodeEmailsSayWhatTheyAreFor(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	subjects := map[string]string{} // subject → what asked for it
	take := func(what, to string) {
		t.Helper()
		m := onlyMessageTo(t, e, to)
		if !sixDigits.MatchString(m.Body) || strings.Contains(m.Subject, "Your Tessera code") {
			t.Fatalf("%s: %q / %q", what, m.Subject, m.Body)
		}
		if other, dup := subjects[m.Subject]; dup {
			t.Fatalf("%s and %s share the subject %q", what, other, m.Subject)
		}
		subjects[m.Subject] = what
	}
	e.doWith("POST", "/auth/register", map[string]any{"email": "sol@example.com", "password": "correct horse battery"}, nil).want(t, 202)
	take("sign-up", "sol@example.com")
	e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": "pat@example.com", "destination": "EMAIL"}, nil).want(t, 200)
	u := register(t, e, "pat@example.com")
	e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": u.email, "destination": "EMAIL"}, nil).want(t, 200)
	take("password reset", u.email)
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	take("anti-phishing code", u.email)
	u.call("POST", "/api/v1/token/userKeys/changing?keyType=EMAIL", nil).want(t, 200)
	take("email change", u.email)
	u.call("POST", "/api/v1/token/userKeys/adding/phoneNumber?newPhoneNumber=%2B14155552671", nil).want(t, 200)
	if sms := onlyMessageTo(t, e, "+14155552671"); !strings.Contains(sms.Body, "to add this phone number to your account is") {
		t.Fatalf("the phone adding SMS does not say what it is for: %q", sms.Body)
	}
	if len(subjects) != 4 {
		t.Fatalf("subjects %v", subjects)
	}
}

// A user's own language wins over the request's, and the anti-phishing
// line stays first.
func TestNoticeInUsersLanguage(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		u := register(t, e, "lena@example.com")
		u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
		u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": e.codeFor(u.email), "antiPhishingCode": "rote-Eule-7"}).want(t, 200)
		e.deliver()

		me := u.call("PATCH", "/auth/me", map[string]any{"locale": "de"}).want(t, 200)
		if me.str("locale") != "de" || u.call("GET", "/auth/me", nil).want(t, 200).str("locale") != "de" {
			t.Fatalf("locale not kept: %s", me.raw)
		}
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "ein ganz neues Passwort"},
			"Accept-Language", "en-US,en").want(t, 200)
		n := onlyMessageTo(t, e, u.email)
		if n.Subject != "Tessera: Ihr Passwort wurde geändert" || !strings.HasPrefix(n.Body, "Ihr Anti-Phishing-Code: rote-Eule-7\n\n") ||
			!strings.Contains(n.Body, "alle anderen Sitzungen wurden beendet") {
			t.Fatalf("notice in the user's language: %q / %q", n.Subject, n.Body)
		}

		// Cleared, the request's language speaks again.
		if me := u.call("PATCH", "/auth/me", map[string]any{"locale": ""}).want(t, 200); me.str("locale") != "" {
			t.Fatalf("locale not cleared: %s", me.raw)
		}
		u.password = "ein ganz neues Passwort"
		u.call("POST", "/auth/password", map[string]any{"oldPassword": u.password, "newPassword": "a brand new password"}, "Accept-Language", "en").want(t, 200)
		if n := onlyMessageTo(t, e, u.email); n.Subject != "Tessera: your password was changed" || !strings.HasPrefix(n.Body, "Your anti-phishing code: rote-Eule-7\n\n") {
			t.Fatalf("notice after clearing: %q / %q", n.Subject, n.Body)
		}
	})
}

// PATCH /auth/me changes settings only: whoever holds an ID token cannot
// slip an email, a phone or a factor in beside the locale.
func TestPatchMeTakesSettingsOnly(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	u := register(t, e, "max@example.com")
	for _, body := range []map[string]any{
		{"email": "thief@example.com"},
		{"locale": "de", "email": "thief@example.com"},
		{"locale": "de", "phoneNumber": "+14155552671"},
		{"locale": "de", "mfaEnabled": false},
	} {
		r := u.call("PATCH", "/auth/me", body).want(t, 422)
		if path, _ := r.detail(); path == "locale" || path == "" {
			t.Fatalf("%v: refused naming %q", body, path)
		}
	}
	for _, bad := range []any{"fr", "DE", 7} {
		r := u.call("PATCH", "/auth/me", map[string]any{"locale": bad}).want(t, 422)
		if path, _ := r.detail(); path != "locale" {
			t.Fatalf("locale %v: refused naming %q", bad, path)
		}
	}
	me := u.call("GET", "/auth/me", nil).want(t, 200)
	if me.str("email") != "m***x@example.com" || me.str("locale") != "" {
		t.Fatalf("after refused changes: %s", me.raw)
	}
	e.doWith("PATCH", "/auth/me", map[string]any{"locale": "de"}, nil).want(t, 401)
}
