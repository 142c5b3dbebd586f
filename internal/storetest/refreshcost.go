package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tessera-id/tessera"
)

// RefreshCostStore is a store that can say how many rows a refresh-token
// rotation visits, from the database's plan.
type RefreshCostStore interface {
	tessera.AccountStore
	RotationRowsVisited(ctx context.Context, sessionID string, now time.Time) (int, error)
}

// RunRefreshCost checks that a session's refresh-token rotation visits as
// many rows on its 3,000th use as on its 3rd: about what a 30-day session
// refreshing every 15 minutes reaches. Rows, not time: the count comes
// from the database's own plan of the statement the rotation runs.
func RunRefreshCost(t *testing.T, open func(t *testing.T) RefreshCostStore) {
	s := open(t)
	createUser(t, s, "u1", "a@example.com")
	sess := newSession("s1", "u1", t0)
	sess.ExpiresAt = t0.Add(40 * 24 * time.Hour)
	must(t, s.CreateSession(ctx(), sess, firstToken("h0", t0)))
	const every = 15 * time.Minute
	rotated := 0
	now := t0
	rotateTo := func(n int) {
		for ; rotated < n; rotated++ {
			now = now.Add(every)
			_, _, err := s.RotateRefreshToken(ctx(), []byte(fmt.Sprint("h", rotated)), firstToken(fmt.Sprint("h", rotated+1), now), []byte("sealed"), now)
			must(t, err)
		}
	}
	visited := func() int {
		n, err := s.RotationRowsVisited(ctx(), "s1", now.Add(every))
		must(t, err)
		return n
	}

	rotateTo(3)
	young := visited()
	rotateTo(3000)
	old := visited()
	t.Logf("rows visited by the next rotation: %d after 3 rotations, %d after 3,000", young, old)
	// The young session's table is tiny: a plan may scan it whole (4 rows)
	// where the old one's must search.
	if old > young || old > 2 {
		t.Fatalf("the next rotation visits %d rows after 3 rotations and %d after 3,000: rotation cost grows with the session's age", young, old)
	}

	// Detection still holds after all of that: the first token, spent long
	// ago, is recognised as reuse with its session.
	_, spent, err := s.RotateRefreshToken(ctx(), []byte("h0"), firstToken("hx", now), []byte("sealed-hx"), now)
	wantCode(t, err, tessera.ECONFLICT)
	if spent == nil || spent.SessionID != "s1" || spent.SuccessorSealed != nil {
		t.Fatalf("a token spent 3,000 rotations ago came back as %+v: want its session, its successor erased", spent)
	}
}
