package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/storetest"
)

// raw sends a request without the JSON expectations of doWith (a
// preflight's 204 has no body) and returns the answer's status and headers.
func (e *env) raw(method, path string, headers map[string]string) (int, http.Header) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if msg, found := e.violations.LoadAndDelete(res.Header.Get("X-Request-Id")); found {
		e.t.Fatalf("%s", msg)
	}
	return res.StatusCode, res.Header
}

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example.com"
)

func preflight(origin, method string) map[string]string {
	return map[string]string{"Origin": origin, "Access-Control-Request-Method": method,
		"Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
}

func TestCORS(t *testing.T) {
	e := newEnvWith(t, storetest.OpenSQLite(t), func(o *app.Options) { o.CORSOrigins = []string{appOrigin} })

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		for _, path := range []string{"/auth/login", "/auth/me", "/api/v1/token/password/recovery", "/api/v1/password/recovery"} {
			status, h := e.raw("OPTIONS", path, preflight(appOrigin, "POST"))
			if status != http.StatusNoContent {
				t.Fatalf("OPTIONS %s: %d, want 204", path, status)
			}
			if h.Get("Access-Control-Allow-Origin") != appOrigin || h.Get("Access-Control-Allow-Credentials") != "true" {
				t.Fatalf("OPTIONS %s: Allow-Origin %q, Allow-Credentials %q", path, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
			}
			methods, headers := h.Get("Access-Control-Allow-Methods"), strings.ToLower(h.Get("Access-Control-Allow-Headers"))
			for _, m := range []string{"GET", "POST", "PATCH", "DELETE"} {
				if !strings.Contains(methods, m) {
					t.Errorf("Allow-Methods %q lacks %s", methods, m)
				}
			}
			for _, hd := range []string{"authorization", "content-type", "idempotency-key", "x-otp"} {
				if !strings.Contains(headers, hd) {
					t.Errorf("Allow-Headers %q lacks %s", headers, hd)
				}
			}
			if !varyOrigin(h) {
				t.Errorf("OPTIONS %s: Vary %q lacks Origin", path, h.Values("Vary"))
			}
		}
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		status, h := e.raw("OPTIONS", "/auth/login", preflight(evilOrigin, "POST"))
		if status != http.StatusForbidden || h.Get("Access-Control-Allow-Origin") != "" || h.Get("Access-Control-Allow-Credentials") != "" {
			t.Fatalf("OPTIONS from %s: %d, Allow-Origin %q, Allow-Credentials %q: want 403 without CORS headers",
				evilOrigin, status, h.Get("Access-Control-Allow-Origin"), h.Get("Access-Control-Allow-Credentials"))
		}
	})

	t.Run("a call from an allowed origin may be read", func(t *testing.T) {
		r := e.doWith("POST", "/auth/register", map[string]string{"email": "cors@example.com", "password": "a long secret"}, map[string]string{"Origin": appOrigin})
		r.want(t, http.StatusAccepted)
		if r.header.Get("Access-Control-Allow-Origin") != appOrigin || r.header.Get("Access-Control-Allow-Credentials") != "true" || !varyOrigin(r.header) {
			t.Fatalf("headers %v", r.header)
		}
		if !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "X-Request-Id") {
			t.Fatalf("Expose-Headers %q", r.header.Get("Access-Control-Expose-Headers"))
		}
	})

	t.Run("a call from another origin cannot be read", func(t *testing.T) {
		// The server still answers (CORS is the browser's rule, and the
		// API takes no cookies), but without the headers that let the
		// browser hand the answer to the other origin's script.
		r := e.doWith("POST", "/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong password"}, map[string]string{"Origin": evilOrigin})
		r.want(t, http.StatusUnauthorized)
		for _, name := range []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Credentials", "Access-Control-Expose-Headers"} {
			if v := r.header.Get(name); v != "" {
				t.Errorf("%s: %q for an origin not allowed", name, v)
			}
		}
		if !varyOrigin(r.header) {
			t.Errorf("Vary %q lacks Origin", r.header.Values("Vary"))
		}
	})

	t.Run("the verification API gets no CORS", func(t *testing.T) {
		status, h := e.raw("OPTIONS", "/methods/email/actions/initiate", preflight(appOrigin, "POST"))
		if status != http.StatusMethodNotAllowed || h.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("preflight of the verification API: %d, Allow-Origin %q", status, h.Get("Access-Control-Allow-Origin"))
		}
		r := e.doWith("POST", "/methods/email/actions/initiate", map[string]string{"consumer": "cors@example.com"},
			map[string]string{"Authorization": "Bearer " + e.token, "Origin": appOrigin})
		r.want(t, http.StatusOK)
		if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
			t.Fatalf("Allow-Origin %q on the verification API", v)
		}
	})
}

func TestCORSOffByDefault(t *testing.T) {
	e := newEnv(t, storetest.OpenSQLite(t))
	status, h := e.raw("OPTIONS", "/auth/login", preflight(appOrigin, "POST"))
	if status != http.StatusMethodNotAllowed || h.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight with CORS off: %d, Allow-Origin %q; want 405 and none", status, h.Get("Access-Control-Allow-Origin"))
	}
	r := e.doWith("POST", "/auth/login", map[string]string{"email": "nobody@example.com", "password": "wrong password"}, map[string]string{"Origin": appOrigin})
	if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("Allow-Origin %q with CORS off", v)
	}
}

func varyOrigin(h http.Header) bool {
	for _, v := range h.Values("Vary") {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), "Origin") {
				return true
			}
		}
	}
	return false
}
