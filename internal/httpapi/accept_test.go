package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestScrapersAndBrowsersGetTheirFormats: the JSON-only Accept rule is the
// JSON APIs'; a Prometheus scraper sending the text format's own media
// type, or OpenMetrics, gets the metrics, and a browser asking for HTML
// gets the pages.
func TestScrapersAndBrowsersGetTheirFormats(t *testing.T) {
	e := newEnv(t, stores[0].open(t))
	get := func(path, accept string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
		req.Header.Set("Accept", accept)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, res.Header.Get("Content-Type"), string(body)
	}
	for _, accept := range []string{"text/plain;version=0.0.4", "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5", "text/plain"} {
		status, ct, body := get("/metrics", accept)
		if status != 200 || !strings.HasPrefix(ct, "text/plain") || !strings.Contains(body, "# TYPE ") {
			t.Errorf("/metrics with Accept %s: %d %s", accept, status, ct)
		}
	}
	if status, ct, _ := get("/docs", "text/html"); status != 200 || !strings.HasPrefix(ct, "text/html") {
		t.Errorf("/docs with Accept text/html: %d %s", status, ct)
	}
	if status, _, body := get("/methods/email/verifiers/x", "text/plain"); status != 406 {
		t.Errorf("the verification API with Accept text/plain: %d %s", status, body)
	}
}
