package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

// decodeBody runs decodeJSON on body as a POST with a JSON Content-Type.
func decodeBody(body []byte, dst any) error {
	r := httptest.NewRequest("POST", "/methods/email/actions/initiate", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	return decodeJSON(httptest.NewRecorder(), r, dst)
}

// checkDecodeError checks the contract of decodeJSON's errors: a
// *tessera.Error with a body-level code, and a field path for the codes
// that name a field.
func checkDecodeError(t *testing.T, body []byte, err error) {
	t.Helper()
	var te *tessera.Error
	if !errors.As(err, &te) {
		t.Fatalf("decodeJSON(%q) = %T %v, want *tessera.Error", body, err, err)
	}
	switch te.Code {
	case tessera.EMALFORMED, tessera.EINVALID:
		if len(te.Details) == 0 {
			t.Fatalf("decodeJSON(%q): %s error without details", body, te.Code)
		}
		for _, d := range te.Details {
			if d.Path == "" || d.Error == "" {
				t.Fatalf("decodeJSON(%q): %s error with an empty detail %+v", body, te.Code, d)
			}
		}
	case tessera.ETOOLARGE:
		if len(body) <= maxBodyBytes {
			t.Fatalf("decodeJSON(%d bytes) = too_large, but the cap is %d", len(body), maxBodyBytes)
		}
	default:
		t.Fatalf("decodeJSON(%q) = code %q, want malformed, invalid or too_large", body, te.Code)
	}
}

func checkTooLarge(t *testing.T, body []byte, err error) {
	t.Helper()
	var te *tessera.Error
	if !errors.As(err, &te) || te.Code != tessera.ETOOLARGE {
		t.Fatalf("decodeJSON(valid JSON of %d bytes, %.40q...) = %v, want too_large", len(body), body, err)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"consumer":"alice@example.com","issuer":"Acme","template":{"body":"Code {{{CODE}}}","subject":"Hi"},` +
			`"generateCode":{"length":6,"symbolSet":["DIGITS"]},"policy":{"expiredOn":"01:00:00","maxAttempts":3},"payload":{"a":[1,2]}}`,
		`{}`,
		`{} `,
		`null`,
		``,
		` `,
		`{`,
		`{"consumer":`,
		`{"consumer":1}`,
		`{"generateCode":{"length":"6"}}`,
		`{"generateCode":{"length":1e400}}`,
		`{"generateCode":{"symbolSet":[1]}}`,
		`{"policy":[]}`,
		`[]`,
		`"string"`,
		`42`,
		`{}{}`,
		`{} x`,
		`{"payload":{"a":}`,
		"{\"consumer\":\"\xff\xfe\"}",
		`{"a":1,"a":2}`,
		"\ufeff{}",
	} {
		f.Add([]byte(s))
	}
	// Bodies over the cap are built from the fuzzed ones below rather than
	// seeded: 64 KiB inputs slow the fuzzer down to a crawl.
	padding := strings.Repeat("a", maxBodyBytes)

	f.Fuzz(func(t *testing.T, body []byte) {
		var req verify.InitiateRequest
		err := decodeBody(body, &req)
		if err == nil {
			// Accepted: exactly one JSON value (and whitespace), under the cap.
			if len(body) > maxBodyBytes {
				t.Fatalf("decodeJSON accepted %d bytes, over the %d-byte cap", len(body), maxBodyBytes)
			}
			if !json.Valid(body) {
				t.Fatalf("decodeJSON accepted invalid JSON %q", body)
			}
		} else {
			checkDecodeError(t, body, err)
		}

		var small struct {
			Name  string          `json:"name"`
			Count int             `json:"count"`
			Tags  []string        `json:"tags"`
			Inner struct{ X int } `json:"inner"`
		}
		if err := decodeBody(body, &small); err != nil {
			checkDecodeError(t, body, err)
		}

		// A body over the cap is too_large, not a misleading "malformed",
		// whenever the caller sent valid JSON: the body itself (kept
		// regressions in testdata/fuzz are that big), and the fuzzed JSON
		// inside an object that is too large.
		if len(body) > maxBodyBytes && json.Valid(body) {
			checkTooLarge(t, body, err)
		}
		if json.Valid(body) {
			big := []byte(`{"payload":[` + string(body) + `],"consumer":"` + padding + `"}`)
			checkTooLarge(t, big, decodeBody(big, &req))
		}
	})
}

func FuzzAcceptsJSON(f *testing.F) {
	for _, s := range []string{
		"",
		"*/*",
		"application/json",
		"application/json; charset=utf-8",
		"application/vnd.jincor+json; version=1",
		"text/html, application/xhtml+xml, application/xml;q=0.9, */*;q=0.8",
		"text/html",
		"text/plain; q=0.5, image/png",
		"application/*",
		"application/json; q=\"a,b\"",
		";;;,,,",
		"application/json;",
		"\x00",
		"application/\u00e9+json",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		got := acceptsJSON(accept)
		if accept == "" && !got {
			t.Fatal("an empty Accept must allow JSON")
		}
		// Adding a media type to a non-empty list can only widen it.
		if accept != "" && got && !acceptsJSON(accept+", text/html") {
			t.Fatalf("acceptsJSON(%q) = true but false once text/html is added", accept)
		}
		if !acceptsJSON(accept + ", application/json") {
			t.Fatalf("acceptsJSON(%q + \", application/json\") = false", accept)
		}
	})
}
