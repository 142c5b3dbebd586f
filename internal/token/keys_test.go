package token

import (
	"context"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/storetest"
)

// TestLifecycle places keys on a timeline: activation times of later
// generations decide who signs, who retired when, and when a retired key
// leaves the JWKS.
func TestLifecycle(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := 15 * time.Minute
	k := func(id string, gen int64, activates time.Duration) *tessera.SigningKey {
		return &tessera.SigningKey{ID: id, Generation: gen, ActivatesAt: t0.Add(activates)}
	}
	for _, tc := range []struct {
		name string
		keys []*tessera.SigningKey // latest generation first
		at   time.Duration
		want []string
	}{
		{"one key", []*tessera.SigningKey{k("a", 1, 0)}, 0, []string{StateActive}},
		{"published ahead", []*tessera.SigningKey{k("b", 2, 10*time.Minute), k("a", 1, 0)}, 9 * time.Minute, []string{StateNext, StateActive}},
		{"activated", []*tessera.SigningKey{k("b", 2, 10*time.Minute), k("a", 1, 0)}, 10 * time.Minute, []string{StateActive, StateRetired}},
		{"retired until its tokens expire", []*tessera.SigningKey{k("b", 2, 10*time.Minute), k("a", 1, 0)}, 10*time.Minute + ttl + reloadEvery - time.Millisecond, []string{StateActive, StateRetired}},
		{"then gone", []*tessera.SigningKey{k("b", 2, 10*time.Minute), k("a", 1, 0)}, 10*time.Minute + ttl + reloadEvery, []string{StateActive, StateGone}},
		// rotate --now while a key waited: the waiting key never signs.
		{"skipped", []*tessera.SigningKey{k("c", 3, 2*time.Minute), k("b", 2, 10*time.Minute), k("a", 1, 0)}, 5 * time.Minute, []string{StateActive, StateRetired, StateRetired}},
		{"skipped key expires with the one it never replaced", []*tessera.SigningKey{k("c", 3, 2*time.Minute), k("b", 2, 10*time.Minute), k("a", 1, 0)}, 2*time.Minute + ttl + reloadEvery, []string{StateActive, StateGone, StateGone}},
	} {
		got := lifecycle(tc.keys, t0.Add(tc.at), ttl)
		for i, st := range got {
			if st.State != tc.want[i] {
				t.Errorf("%s: key %s is %s, want %s", tc.name, st.ID, st.State, tc.want[i])
			}
		}
	}
}

// TestMaintain: a first key signs at once; automatic rotation and a new
// algorithm publish the next key ahead, once, even with two instances at
// work; retired keys are deleted after their tokens expire.
func TestMaintain(t *testing.T) {
	ctx := context.Background()
	keys, err := secret.NewKeyring(make([]byte, 32), []secret.Key{{ID: "k1", Key: make([]byte, 32)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	store := storetest.OpenSQLite(t)
	instance := func() *Signer {
		return &Signer{Store: store, Keys: keys, TTL: 15 * time.Minute, Now: func() time.Time { return now },
			RotateEvery: 24 * time.Hour, Issuer: "i", Audience: "a"}
	}
	a, b := instance(), instance()
	maintain := func(s *Signer) []string {
		t.Helper()
		did, err := s.Maintain(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return did
	}
	states := func() []KeyStatus {
		t.Helper()
		list, err := a.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return list
	}
	maintain(a)
	maintain(b)
	if l := states(); len(l) != 1 || l[0].State != StateActive || l[0].Algorithm != AlgEdDSA {
		t.Fatalf("first start: %+v", l)
	}
	now = now.Add(24*time.Hour - DefaultPublishAhead - time.Minute)
	if did := maintain(a); len(did) != 0 {
		t.Fatalf("rotated before due: %v", did)
	}
	now = now.Add(time.Minute)
	maintain(a)
	maintain(b)
	if l := states(); len(l) != 2 || l[0].State != StateNext || !l[0].ActivatesAt.Equal(now.Add(DefaultPublishAhead)) {
		t.Fatalf("automatic rotation: %+v", l)
	}
	// Two instances that read the same key set rotate at once: one key.
	if _, err := b.List(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Rotate(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Rotate(ctx, true); tessera.ErrorCode(err) != tessera.ECONFLICT {
		t.Fatalf("the second of two racing rotations: %v, want a conflict", err)
	}

	// The operator switches to ES256: the next key is ES256, published ahead.
	now = now.Add(DefaultPublishAhead)
	a.Algorithm = AlgES256
	maintain(a)
	l := states()
	if l[0].State != StateNext || l[0].Algorithm != AlgES256 || l[1].State != StateActive || l[1].Algorithm != AlgEdDSA {
		t.Fatalf("after the algorithm change: %+v", l)
	}
	now = now.Add(DefaultPublishAhead)
	if l := states(); l[0].State != StateActive || l[0].Algorithm != AlgES256 {
		t.Fatalf("the ES256 key does not sign: %+v", l)
	}
	now = now.Add(15*time.Minute + reloadEvery)
	maintain(a)
	if l := states(); len(l) != 1 || l[0].Algorithm != AlgES256 {
		t.Fatalf("retired keys are not deleted: %+v", l)
	}
}
