package token

import (
	"context"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// BenchmarkIssue signs an ID token (EdDSA) with the cached signing key.
func BenchmarkIssue(b *testing.B) {
	s := fuzzSigner(b)
	ctx := context.Background()
	u := &tessera.User{ID: "user-1", Email: "ada@example.com"}
	sess := &tessera.Session{ID: "session-1", UserID: "user-1", AMR: []string{"pwd", "otp"}, AAL: 2, AuthTime: fuzzNow.Add(-time.Minute)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.Issue(ctx, u, sess); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerify checks an ID token: signature, issuer, audience, lifetime.
func BenchmarkVerify(b *testing.B) {
	s := fuzzSigner(b)
	ctx := context.Background()
	raw, _, err := s.Issue(ctx, &tessera.User{ID: "user-1", Email: "ada@example.com"}, &tessera.Session{ID: "session-1", UserID: "user-1", AMR: []string{"pwd"}, AAL: 1, AuthTime: fuzzNow})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Verify(ctx, raw); err != nil {
			b.Fatal(err)
		}
	}
}
