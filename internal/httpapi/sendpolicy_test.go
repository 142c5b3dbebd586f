package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tessera-id/tessera/internal/apiclient"
	"github.com/tessera-id/tessera/internal/verify"
)

// addTemplate registers a template as `tessera template add` does.
func (e *env) addTemplate(id, locale, subject, body string) {
	e.t.Helper()
	mt, err := verify.NewMessageTemplate(id, locale, subject, body, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.store.PutTemplate(context.Background(), mt); err != nil {
		e.t.Fatal(err)
	}
}

// setPolicy gives the env's test client a sending policy, as `tessera
// client policy` does.
func (e *env) setPolicy(templatesOnly bool, fromAllow ...string) {
	e.t.Helper()
	if _, err := e.app.Clients.SetPolicy(context.Background(), "test-client", fromAllow, templatesOnly); err != nil {
		e.t.Fatal(err)
	}
}

// TestSendingPolicyDefaultsKeepTheBlueprint: a client without a policy
// sends its own text from its own address, as the blueprint allows.
func TestSendingPolicyDefaultsKeepTheBlueprint(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		e.do("POST", "/methods/email/actions/initiate", map[string]any{
			"consumer": "free@example.com",
			"template": map[string]any{"body": "Anything at all: {{{CODE}}}", "subject": "Hi", "fromEmail": "ceo@anywhere.example"},
		}).want(t, 200)
		msgs := e.deliver()
		if len(msgs) != 1 || !strings.HasPrefix(msgs[0].Body, "Anything at all: ") || msgs[0].Subject != "Hi" {
			t.Fatalf("delivered %+v", msgs)
		}
	})
}

// TestSendingPolicyRefusesFreeText: a client limited to templates cannot
// send its own body, subject or sender name, nor the default message; a
// registered template reaches the person with the code in it.
func TestSendingPolicyRefusesFreeText(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		e.addTemplate("login", "en", "Your Acme sign-in code", "Acme sign-in code: {{{CODE}}}. Never share it.")
		e.addTemplate("login", "pt-BR", "Seu código Acme", "Código de acesso Acme: {{{CODE}}}.")
		e.setPolicy(true, "acme.example")

		for _, tc := range []struct {
			template map[string]any
			path     string
		}{
			{map[string]any{"body": "Your bank account is locked, call +1 900 555 0100. {{{CODE}}}"}, "template.body"},
			{map[string]any{"subject": "Urgent: account locked"}, "template.subject"},
			{map[string]any{"id": "login", "fromName": "Your Bank"}, "template.fromName"},
			{nil, "template.id"},
			{map[string]any{"id": "login", "fromEmail": "security@bank.example"}, "template.fromEmail"},
		} {
			body := map[string]any{"consumer": "victim@example.com", "issuer": "Bank: call +1 900 555 0100"}
			if tc.template != nil {
				body["template"] = tc.template
			}
			r := e.do("POST", "/methods/email/actions/initiate", body).want(t, 403)
			if path, _ := r.detail(); r.str("code") != "forbidden" || path != tc.path {
				t.Fatalf("template %v: %s, want forbidden naming %s", tc.template, r.raw, tc.path)
			}
		}
		if msgs := e.deliver(); len(msgs) != 0 {
			t.Fatalf("refused requests sent %+v", msgs)
		}

		// A registered template, from an allowed domain.
		e.do("POST", "/methods/email/actions/initiate", map[string]any{
			"consumer": "user@example.com",
			"template": map[string]any{"id": "login", "fromEmail": "codes@acme.example", "fromName": ""},
		}).want(t, 200)
		// A locale with its region falls back to the registered one.
		e.do("POST", "/methods/email/actions/initiate", map[string]any{
			"consumer": "usuario@example.com",
			"template": map[string]any{"id": "login", "locale": "pt-br"},
		}).want(t, 200)
		// An unknown locale falls back to en.
		e.do("POST", "/methods/phone/actions/initiate", map[string]any{
			"consumer": "+14155552671",
			"template": map[string]any{"id": "login", "locale": "fr"},
		}).want(t, 200)
		got := map[string]delivered{}
		for _, m := range e.deliver() {
			got[m.To] = m
		}
		en := got["user@example.com"]
		code := sixDigits.FindString(en.Body)
		if code == "" || en.Body != "Acme sign-in code: "+code+". Never share it." || en.Subject != "Your Acme sign-in code" {
			t.Fatalf("the en template was delivered as %+v", en)
		}
		if pt := got["usuario@example.com"]; !strings.HasPrefix(pt.Body, "Código de acesso Acme: ") || pt.Subject != "Seu código Acme" {
			t.Fatalf("the pt-BR template was delivered as %+v", pt)
		}
		if sms := got["+14155552671"]; !strings.HasPrefix(sms.Body, "Acme sign-in code: ") {
			t.Fatalf("the SMS was delivered as %+v", sms)
		}
		// The code in the message validates.
		e.do("POST", "/methods/email/actions/initiate", map[string]any{
			"consumer": "check@example.com", "template": map[string]any{"id": "login"},
			"policy": map[string]any{"forcedVerificationId": "0b6a9a3e-7a4e-4c53-9a43-8c1b3e1c2d4f"},
		}).want(t, 200)
		e.do("POST", "/methods/email/verifiers/0b6a9a3e-7a4e-4c53-9a43-8c1b3e1c2d4f/actions/validate",
			map[string]any{"code": e.codeFor("check@example.com")}).want(t, 200)

		// An unknown template, or a template with free text, is a bad
		// request, not a policy refusal.
		r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"id": "nope"}}).want(t, 422)
		if path, why := r.detail(); path != "template.id" || why != `no template "nope" is registered for locale en` {
			t.Fatalf("unknown template: %s", r.raw)
		}
		r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"id": "nope", "locale": "pt-BR"}}).want(t, 422)
		if _, why := r.detail(); why != `no template "nope" is registered for locale pt-BR or pt or en` {
			t.Fatalf("unknown template in pt-BR: %s", r.raw)
		}
		r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"id": "login", "body": "x {{{CODE}}}"}}).want(t, 422)
		if path, _ := r.detail(); path != "template.body" {
			t.Fatalf("template with a body: %s", r.raw)
		}
	})
}

// TestSendingPolicyFromEmail: without templates-only, the client writes its
// own text but sends only from its allowed addresses and domains.
func TestSendingPolicyFromEmail(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		e.setPolicy(false, "acme.example", "alerts@partner.example")
		for from, ok := range map[string]bool{
			"codes@acme.example":      true,
			"CODES@ACME.EXAMPLE":      true,
			"alerts@partner.example":  true,
			"":                        true, // the server's own sender
			"other@partner.example":   false,
			"codes@mail.acme.example": false, // a subdomain needs its own entry
			"codes@acme.example.evil": false,
			"security@bank.example":   false,
		} {
			tpl := map[string]any{"body": "Your code: {{{CODE}}}"}
			if from != "" {
				tpl["fromEmail"] = from
			}
			r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": tpl})
			if ok {
				r.want(t, 200)
				continue
			}
			r.want(t, 403)
			if path, _ := r.detail(); path != "template.fromEmail" {
				t.Fatalf("fromEmail %s: %s", from, r.raw)
			}
		}
		// A policy with no addresses allows only the server's sender.
		e.setPolicy(false)
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"fromEmail": "codes@acme.example"}}).want(t, 403)
		// Another client is not bound by this one's policy.
		other := e.newClient("other")
		e.doWith("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"fromEmail": "x@y.example"}},
			map[string]string{"Authorization": "Bearer " + other}).want(t, 200)
		// Clearing the policy frees the client again.
		if err := e.app.Clients.ClearPolicy(context.Background(), "test-client"); err != nil {
			t.Fatal(err)
		}
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "a@example.com", "template": map[string]any{"fromEmail": "codes@acme.example"}}).want(t, 200)
	})
}

// TestSendingPolicyChangeApplies: a policy set on this instance applies to
// the next initiate; one changed elsewhere (another instance, or the
// `tessera client policy` command) applies within verify.SendingPolicyTTL,
// which this instance remembers a policy for.
func TestSendingPolicyChangeApplies(t *testing.T) {
	onEachStore(t, func(t *testing.T, e *env) {
		freeText := func(n int) *response {
			return e.do("POST", "/methods/email/actions/initiate", map[string]any{
				"consumer": fmt.Sprintf("change%d@example.com", n),
				"template": map[string]any{"body": "Anything at all: {{{CODE}}}"},
			})
		}
		freeText(1).want(t, 200) // no policy, and now remembered as none

		e.setPolicy(true)
		if r := freeText(2); r.status != 403 {
			t.Fatalf("free text right after this instance set templates-only: %d %s, want 403", r.status, r.raw)
		}

		other := &apiclient.Registry{Store: e.store, Keys: e.app.Clients.Keys, Now: e.clock.Now}
		if err := other.ClearPolicy(context.Background(), "test-client"); err != nil {
			t.Fatal(err)
		}
		if r := freeText(3); r.status != 403 {
			t.Fatalf("free text just after another instance cleared the policy: %d, want 403 (remembered for %v)", r.status, verify.SendingPolicyTTL)
		}
		e.clock.Advance(verify.SendingPolicyTTL)
		freeText(4).want(t, 200)
	})
}
