package verify

import (
	"bytes"
	"context"
	"fmt"
	mathrand "math/rand/v2"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// BenchmarkValidate is the code check: a validate of a fresh verification
// with its right code, on SQLite, the engine's whole path (read, hash
// compare, consume in the group commit). The verifications are initiated
// before the timer starts.
func BenchmarkValidate(b *testing.B) {
	keys, err := secret.NewKeyring(bytes.Repeat([]byte{1}, 32), []secret.Key{{ID: "k1", Key: bytes.Repeat([]byte{2}, 32)}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	e := &Engine{Store: storetest.OpenSQLite(b), Keys: keys, Now: func() time.Time { return t0 },
		Random: mathrand.NewChaCha8([32]byte{'b', 'e', 'n', 'c', 'h'})}
	ctx := context.Background()
	const code = "493817"
	ids := make([]string, b.N)
	for i := range ids {
		ids[i] = fmt.Sprintf("0e5d3b52-1c8f-4f7a-9a41-%012d", i)
		_, err := e.Initiate(ctx, owner, tessera.MethodEmail, &InitiateRequest{
			Consumer: "alice@example.com", Issuer: "Acme",
			Policy: Policy{ForcedCode: code, ForcedVerificationID: ids[i]},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for _, id := range ids {
		if _, err := e.Validate(ctx, owner, tessera.MethodEmail, id, code, false); err != nil {
			b.Fatal(err)
		}
	}
}
