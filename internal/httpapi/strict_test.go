package httpapi_test

import (
	"testing"
)

// A misspelt optional field must not pass silently: the accounts and
// one-time-token APIs refuse it, naming it; the verification API keeps
// the blueprint's tolerance and names what it ignored in a header.
func TestUnknownFieldsAreRefusedOrReported(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	r := e.doWith("POST", "/auth/register", map[string]any{"email": "typo@example.com", "password": "correct horse battery", "emial": "x"}, nil).want(t, 422)
	if path, msg := r.detail(); path != "emial" || msg != "is not a field of this request" {
		t.Fatalf("register with a misspelt field: %s", r.raw)
	}
	r = e.doWith("POST", "/api/v1/token/password/recovery", map[string]any{"email": "typo@example.com", "destination": "EMAIL", "processingId": "p1", "destinaton": "PHONE"}, nil).want(t, 422)
	if path, _ := r.detail(); path != "destinaton" {
		t.Fatalf("token request with a misspelt field: %s", r.raw)
	}
	if len(e.deliver()) != 0 {
		t.Fatal("a refused request sent a message")
	}

	r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "typo@example.com", "polcy": map[string]any{}, "policy": map[string]any{"forcdCode": "123456"}}).want(t, 200)
	if got := r.header.Get("Tessera-Ignored-Fields"); got != "polcy, policy.forcdCode" {
		t.Fatalf("Tessera-Ignored-Fields: %q", got)
	}
	r = e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "typo@example.com"}).want(t, 200)
	if got, set := r.header["Tessera-Ignored-Fields"]; set {
		t.Fatalf("Tessera-Ignored-Fields on a request without unknown fields: %q", got)
	}
}

// A field sent with a value out of range is refused, naming it, never
// taken for the default it would get if left out.
func TestZeroValuesAreNotDefaults(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	for path, body := range map[string]map[string]any{
		"generateCode.length":    {"generateCode": map[string]any{"length": 0}},
		"generateCode.symbolSet": {"generateCode": map[string]any{"symbolSet": []string{}}},
		"policy.maxAttempts":     {"policy": map[string]any{"maxAttempts": 0}},
		"policy.expiredOn":       {"policy": map[string]any{"expiredOn": ""}},
	} {
		body["consumer"] = "zero@example.com"
		r := e.do("POST", "/methods/email/actions/initiate", body).want(t, 422)
		if got, _ := r.detail(); got != path {
			t.Errorf("%s sent empty: %s", path, r.raw)
		}
	}
	// Left out, the defaults apply.
	e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "zero@example.com", "generateCode": map[string]any{}, "policy": map[string]any{}}).want(t, 200)
}
