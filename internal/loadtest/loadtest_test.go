package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTrivialServerText(t *testing.T) {
	srv := httptest.NewServer(TrivialHandler())
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	err := Command(t.Context(), []string{"-url", srv.URL, "-d", "300ms", "-c", "4"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Command: %v (stderr: %s)", err, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	for _, label := range []string{"pairs/s", "requests/s", "p50", "p99", "max", "errors"} {
		if !strings.Contains(out, label) {
			t.Errorf("output lacks label %q", label)
		}
	}
	if !regexp.MustCompile(`(?m)^errors\s+0$`).MatchString(out) {
		t.Errorf("want 0 errors in output")
	}
	if m := regexp.MustCompile(`(?m)^pairs\s+(\d+)$`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("want pairs > 0, got %v", m)
	}
}

func TestTrivialServerJSON(t *testing.T) {
	srv := httptest.NewServer(TrivialHandler())
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	err := Command(t.Context(), []string{"-url", srv.URL, "-d", "300ms", "-c", "4", "-json", "-method", "phone"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Command: %v (stderr: %s)", err, stderr.String())
	}
	var res jsonResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout.String())
	}
	if res.Pairs <= 0 || res.Errors != 0 || res.PairsPerSec <= 0 {
		t.Errorf("want pairs > 0 and no errors, got %+v", res)
	}
	if res.Requests < 2*res.Pairs {
		t.Errorf("requests = %d, want at least 2 per pair (%d pairs)", res.Requests, res.Pairs)
	}
	if res.RequestP50Ms <= 0 || res.RequestP99Ms < res.RequestP50Ms || res.RequestMaxMs < res.RequestP99Ms {
		t.Errorf("inconsistent request percentiles: %+v", res)
	}
	if res.ErrorSamples == nil {
		t.Errorf("error_samples should be [] not null")
	}
}

// TestRequests checks what the load sends: routes, headers, bodies, and that
// the validate code is the forced one.
func TestRequests(t *testing.T) {
	for _, tc := range []struct {
		method   string
		consumer *regexp.Regexp
	}{
		{"email", regexp.MustCompile(`^load-\d+-\d+@example\.com$`)},
		{"phone", regexp.MustCompile(`^\+1415555\d{4}$`)},
	} {
		t.Run(tc.method, func(t *testing.T) {
			// Initiate answers with the forced code as the id, so validate
			// can check it receives the same code.
			fail := t.Errorf
			checkHeaders := func(r *http.Request) {
				if got := r.Header.Get("Authorization"); got != "Bearer secret" {
					fail("Authorization = %q", got)
				}
				if got := r.Header.Get("Content-Type"); got != "application/json" {
					fail("Content-Type = %q", got)
				}
				if got := r.Header.Get("Accept"); got != "application/json" {
					fail("Accept = %q", got)
				}
			}
			mux := http.NewServeMux()
			mux.HandleFunc("POST /methods/"+tc.method+"/actions/initiate", func(w http.ResponseWriter, r *http.Request) {
				checkHeaders(r)
				var body struct {
					Consumer string `json:"consumer"`
					Issuer   string `json:"issuer"`
					Policy   struct {
						ExpiredOn  string `json:"expiredOn"`
						ForcedCode string `json:"forcedCode"`
					} `json:"policy"`
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					fail("initiate body: %v", err)
				}
				if !tc.consumer.MatchString(body.Consumer) || body.Issuer != "bench" ||
					body.Policy.ExpiredOn != "00:05:00" || !regexp.MustCompile(`^\d{6}$`).MatchString(body.Policy.ForcedCode) {
					fail("unexpected initiate body %+v", body)
				}
				io.WriteString(w, `{"status":200,"verificationId":"code-`+body.Policy.ForcedCode+`","attempts":0}`)
			})
			mux.HandleFunc("POST /methods/"+tc.method+"/verifiers/{id}/actions/validate", func(w http.ResponseWriter, r *http.Request) {
				checkHeaders(r)
				var body struct {
					Code string `json:"code"`
				}
				if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
					fail("validate body: %v", err)
				}
				if r.PathValue("id") != "code-"+body.Code {
					fail("validate id %q with code %q", r.PathValue("id"), body.Code)
				}
				io.WriteString(w, `{"status":200,"data":{}}`)
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()

			res, err := Run(t.Context(), Config{
				URL: srv.URL + "/", Token: "secret", Concurrency: 3,
				Duration: 10 * time.Second, MaxPairs: 25, Method: tc.method,
			})
			if err != nil {
				t.Fatal(err)
			}
			// -n bounds attempted pairs exactly.
			if res.Pairs != 25 || res.Errors != 0 || res.Requests != 50 {
				t.Errorf("want 25 pairs, 50 requests, no errors; got %+v", res)
			}
		})
	}
}

func TestValidateErrors(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("POST /methods/{method}/actions/initiate", TrivialHandler())
	mux.HandleFunc("POST /methods/{method}/verifiers/{id}/actions/validate", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		io.WriteString(w, `{"status":500,"message":"boom"}`)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var stdout, stderr bytes.Buffer
	err := Command(t.Context(), []string{"-url", srv.URL, "-d", "300ms", "-c", "4"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("Command: %v (stderr: %s)", err, stderr.String())
	}
	out := stdout.String()
	t.Log("\n" + out)
	if !regexp.MustCompile(`(?m)^pairs\s+0$`).MatchString(out) {
		t.Errorf("want 0 successful pairs")
	}
	if m := regexp.MustCompile(`(?m)^errors\s+(\d+)$`).FindStringSubmatch(out); m == nil || m[1] == "0" {
		t.Errorf("want errors > 0, got %v", m)
	}
	if !strings.Contains(out, `validate: HTTP 500: {"status":500,"message":"boom"}`) {
		t.Errorf("output lacks the error message")
	}
}

func TestJSONStatusAndMalformedReplies(t *testing.T) {
	for name, reply := range map[string]string{
		"json status": `{"status":403,"message":"denied"}`,
		"not json":    `<html>oops</html>`,
		"no id":       `{"status":200}`,
	} {
		t.Run(name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, reply)
			}))
			defer srv.Close()
			res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 2, Duration: 10 * time.Second, MaxPairs: 10, Method: "email"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Pairs != 0 || res.Errors != 10 || len(res.ErrorSamples) != 1 || res.ErrorSamples[0].Count != 10 {
				t.Errorf("want 10 errors of one kind, got %+v", res)
			}
		})
	}
}

// TestDeadlineCutOff checks that requests still in flight when the run ends
// are not errors: every request here outlasts the run.
func TestDeadlineCutOff(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release) // let handlers return before srv.Close waits for them

	res, err := Run(t.Context(), Config{URL: srv.URL, Concurrency: 4, Duration: 100 * time.Millisecond, Method: "email"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Pairs != 0 || res.Requests != 0 {
		t.Errorf("want nothing counted, got %+v", res)
	}
}

func TestConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	res, err := Run(t.Context(), Config{URL: url, Concurrency: 2, Duration: 10 * time.Second, MaxPairs: 5, Method: "email"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 5 || len(res.ErrorSamples) == 0 || !strings.HasPrefix(res.ErrorSamples[0].Message, "initiate: ") {
		t.Errorf("want 5 initiate errors, got %+v", res)
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-method", "sms"},
		{"-c", "0"},
		{"-d", "0s"},
		{"-n", "-1"},
		{"-url", "127.0.0.1:8080"},
		{"-nope"},
		{"extra"},
	} {
		if err := Command(t.Context(), args, io.Discard, io.Discard); err == nil {
			t.Errorf("Command(%q) succeeded, want error", args)
		}
	}
	var stderr bytes.Buffer
	if err := Command(t.Context(), []string{"-help"}, io.Discard, &stderr); err != nil {
		t.Errorf("-help: %v", err)
	}
	if !strings.Contains(stderr.String(), "-serve-trivial") {
		t.Errorf("-help output lacks flags:\n%s", stderr.String())
	}
}

func TestServeTrivial(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- Command(ctx, []string{"-serve-trivial", "127.0.0.1:0"}, pw, io.Discard)
		pw.Close()
	}()

	line := make([]byte, 256)
	n, err := pr.Read(line)
	if err != nil {
		t.Fatal(err)
	}
	addr := regexp.MustCompile(`http://\S+`).FindString(string(line[:n]))
	if addr == "" {
		t.Fatalf("no address in %q", line[:n])
	}
	go io.Copy(io.Discard, pr)

	resp, err := http.Get(addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz: %s", resp.Status)
	}
	res, err := Run(t.Context(), Config{URL: addr, Concurrency: 2, Duration: 10 * time.Second, MaxPairs: 20, Method: "email"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Pairs != 20 || res.Errors != 0 {
		t.Errorf("want 20 pairs, got %+v", res)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve-trivial: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve-trivial did not stop on cancel")
	}
}

func TestTrivialIDsAreUUIDShaped(t *testing.T) {
	h := TrivialHandler()
	uuidRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", "/methods/email/actions/initiate", strings.NewReader(`{}`)))
		var r reply
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil || r.Status != 200 {
			t.Fatalf("initiate reply %q: %v", rec.Body.String(), err)
		}
		if !uuidRE.MatchString(r.VerificationID) || seen[r.VerificationID] {
			t.Fatalf("bad or repeated id %q", r.VerificationID)
		}
		seen[r.VerificationID] = true
	}
}

func TestPercentile(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		d := make([]time.Duration, len(vs))
		for i, v := range vs {
			d[i] = time.Duration(v) * time.Millisecond
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", ms(7), 50, 7 * time.Millisecond},
		{"single p99", ms(7), 99, 7 * time.Millisecond},
		{"two p50", ms(1, 2), 50, 1 * time.Millisecond},
		{"two p51", ms(1, 2), 51, 2 * time.Millisecond},
		{"odd p50", ms(1, 2, 3), 50, 2 * time.Millisecond},
		{"four p50", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"four p75", ms(1, 2, 3, 4), 75, 3 * time.Millisecond},
		{"hundred p50", ms(hundred...), 50, 50 * time.Millisecond},
		{"hundred p99", ms(hundred...), 99, 99 * time.Millisecond},
		{"hundred p99.5", ms(hundred...), 99.5, 100 * time.Millisecond},
		{"hundred p100", ms(hundred...), 100, 100 * time.Millisecond},
		{"hundred p1", ms(hundred...), 1, 1 * time.Millisecond},
		{"tiny p", ms(1, 2, 3), 0.001, 1 * time.Millisecond},
		{"ten p99", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"ten p90", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Percentile(tc.samples, tc.p); got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
			}
		})
	}
}
