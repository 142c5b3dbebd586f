package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func scrape(t *testing.T, e *env) string {
	t.Helper()
	res, err := http.Get(e.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics answered %d", res.StatusCode)
	}
	return string(body)
}

// TestMetricsShowTheFlows: after a verification, a login and a refused
// request, a scrape shows each, labelled by route pattern, never by id.
func TestMetricsShowTheFlows(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "m@example.com", "policy": map[string]any{"maxAttempts": 1}}).want(t, 200).str("verificationId")
	code := e.codeFor("m@example.com")
	e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": wrong(code)}).want(t, 422)
	e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 422) // locked
	id2 := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "n@example.com"}).want(t, 200).str("verificationId")
	e.do("POST", "/methods/email/verifiers/"+id2+"/actions/validate", map[string]any{"code": e.codeFor("n@example.com")}).want(t, 200)
	e.do("POST", "/methods/email/verifiers/"+id2+"/actions/resend", nil).want(t, 404)
	u := register(t, e, "obs@example.com")
	u.login(t).want(t, 200)
	e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "wrong password"}, nil).want(t, 401)
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 429)
	if m := scrape(t, e); !strings.Contains(m, "tessera_outbox_pending 1") {
		t.Error("the message waiting in the outbox is not counted")
	}
	e.deliver()

	m := scrape(t, e)
	for _, want := range []string{
		`tessera_http_requests_total{method="POST",route="POST /methods/{method}/actions/initiate",status="200"} 2`,
		`tessera_http_request_duration_seconds_count{method="POST",route="POST /methods/{method}/verifiers/{id}/actions/validate"} 3`,
		`tessera_verifications_total{method="email",result="initiated"}`,
		`tessera_verifications_total{method="email",result="failed"} 1`,
		`tessera_verifications_total{method="email",result="locked"} 1`,
		`tessera_verifications_total{method="email",result="validated"}`,
		`tessera_outbox_deliveries_total{channel="email",result="sent",sender=""}`,
		`tessera_logins_total{result="success"}`,
		`tessera_logins_total{result="failed"} 1`,
		`tessera_rate_limited_total{route="POST /api/v1/token/antiPhishing/adding"} 1`,
		`tessera_outbox_pending 0`,
		`go_sql_open_connections{db_name="sqlite_write"}`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("the scrape lacks %s", want)
		}
	}
	if strings.Contains(m, id) || strings.Contains(m, id2) {
		t.Error("a verification id became a metric label")
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	e.doWith("GET", "/healthz", nil, nil).want(t, 200)
	e.doWith("GET", "/readyz", nil, nil).want(t, 200)
	e.store.Close()
	e.doWith("GET", "/healthz", nil, nil).want(t, 200) // the process is up
	e.doWith("GET", "/readyz", nil, nil).want(t, 503)  // but it cannot serve
}

// TestLogsHoldNoSecrets runs verifications, a registration, logins with
// MFA and refreshes while capturing every log line, then looks for any
// code, token or password in them.
func TestLogsHoldNoSecrets(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	var logs lockedBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.app.HTTP.Log, e.app.Worker.Log, e.app.Accounts.Log = log, log, log

	var secrets []string
	id := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "l@example.com"}).want(t, 200).str("verificationId")
	code := e.codeFor("l@example.com")
	e.do("POST", "/methods/email/verifiers/"+id+"/actions/validate", map[string]any{"code": code}).want(t, 200)
	secrets = append(secrets, code, e.token)
	u := register(t, e, "logs@example.com")
	secrets = append(secrets, u.password, u.idToken, u.refreshToken)
	u.take(e.doWith("POST", "/auth/login/refresh", map[string]any{"refreshToken": u.refreshToken}, nil).want(t, 200))
	secrets = append(secrets, u.idToken, u.refreshToken)
	u.call("POST", "/api/v1/token/antiPhishing/adding", nil).want(t, 200)
	ott := e.codeFor(u.email)
	u.call("POST", "/api/v1/antiPhishing/adding", map[string]any{"oneTimeToken": ott, "antiPhishingCode": "secret-phrase"}).want(t, 200)
	secrets = append(secrets, ott, "secret-phrase")
	e.doWith("POST", "/auth/login", map[string]any{"email": u.email, "password": "a wrong password"}, nil).want(t, 401)
	secrets = append(secrets, "a wrong password")

	out := logs.String()
	if !regexp.MustCompile(`"msg":"request"`).MatchString(out) {
		t.Fatal("nothing was logged: the test would prove nothing")
	}
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("a log line holds %q", s)
		}
	}
}
