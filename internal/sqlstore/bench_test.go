package sqlstore_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/storetest"
)

// BenchmarkRotateRefreshToken rotates one session's refresh token b.N
// times in a row on SQLite, a second apart: the store's whole rotation
// (read, conditional update, insert, session touch, successor erase).
func BenchmarkRotateRefreshToken(b *testing.B) {
	db := storetest.OpenSQLite(b)
	ctx := context.Background()
	now := time.UnixMilli(1_800_000_000_000)
	if err := db.CreateUser(ctx, &tessera.User{ID: "u1", Email: "a@example.com", Status: tessera.UserActive, CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	sess := &tessera.Session{ID: "s1", UserID: "u1", AMR: []string{"pwd"}, CreatedAt: now, LastUsedAt: now, ExpiresAt: now.Add(1000 * 24 * time.Hour), AuthTime: now, AAL: 1}
	if err := db.CreateSession(ctx, sess, &tessera.RefreshToken{Hash: []byte("h0"), CreatedAt: now}); err != nil {
		b.Fatal(err)
	}
	hashes := make([][]byte, b.N+1)
	for i := range hashes {
		hashes[i] = []byte(fmt.Sprintf("refresh-token-hash-%032d", i))
	}
	hashes[0] = []byte("h0")
	sealed := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Second)
		if _, _, err := db.RotateRefreshToken(ctx, hashes[i], &tessera.RefreshToken{Hash: hashes[i+1], CreatedAt: now}, sealed, now); err != nil {
			b.Fatal(err)
		}
	}
}
