package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/verify"
)

// A typical initiate body of the verification API, as the load test sends.
const benchInitiateBody = `{"consumer":"alice@example.com","issuer":"Acme","template":{"subject":"Your code","body":"Your code is {{{CODE}}}"},` +
	`"generateCode":{"length":6,"symbolSet":["NUMERIC"]},"policy":{"forcedVerificationId":"0e5d3b52-1c8f-4f7a-9a41-3f1d2b7c9e01","forcedCode":"493817"},"payload":{"order":"A-1042"}}`

// BenchmarkDecodeInitiate decodes an initiate request body as the handler
// does (content type check, size cap, one object and nothing after it).
func BenchmarkDecodeInitiate(b *testing.B) {
	w := httptest.NewRecorder()
	body := strings.NewReader(benchInitiateBody)
	r := httptest.NewRequest(http.MethodPost, "/methods/email/actions/initiate", body)
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body.Reset(benchInitiateBody)
		r.Body = io.NopCloser(body)
		var req verify.InitiateRequest
		if err := decodeJSON(w, r, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeValidate decodes a validate request body.
func BenchmarkDecodeValidate(b *testing.B) {
	const raw = `{"code":"493817"}`
	w := httptest.NewRecorder()
	body := strings.NewReader(raw)
	r := httptest.NewRequest(http.MethodPost, "/methods/email/verifiers/x/actions/validate", body)
	r.Header.Set("Content-Type", "application/json")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		body.Reset(raw)
		r.Body = io.NopCloser(body)
		var req struct {
			Code         string `json:"code"`
			RemoveSecret bool   `json:"removeSecret"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			b.Fatal(err)
		}
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so the benchmark
// measures the encoding, not a recorder's buffer.
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}

// BenchmarkEncodeVerification writes the validate response (a verification
// with a payload) as the handler does.
func BenchmarkEncodeVerification(b *testing.B) {
	v := &tessera.Verification{ID: "0e5d3b52-1c8f-4f7a-9a41-3f1d2b7c9e01", Consumer: "alice@example.com",
		ExpiresAt: time.Unix(1_800_000_900, 0), Payload: []byte(`{"order":"A-1042"}`)}
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		writeJSON(w, http.StatusOK, dataJSON{Status: http.StatusOK, Data: verificationView(v)})
	}
}
