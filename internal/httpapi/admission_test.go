package httpapi_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/app"
	"github.com/tessera-id/tessera/internal/storetest"
)

// gatedStore holds every verification read, while closed, until released:
// requests that read one stay in progress as long as the test wants.
type gatedStore struct {
	app.Storage
	closed  atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (g *gatedStore) Verification(ctx context.Context, owner, id string) (*tessera.Verification, error) {
	if g.closed.Load() {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.Storage.Verification(ctx, owner, id)
}

// TestOverloadAnswersAtOnce fills TESSERA_MAX_IN_FLIGHT with requests held
// in the store: the next request is answered at once with 503 unavailable
// and Retry-After, whatever its route, while the probes still answer; once
// the held requests finish, requests are served again.
func TestOverloadAnswersAtOnce(t *testing.T) {
	const bound = 2
	store := &gatedStore{Storage: storetest.OpenSQLite(t), entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnvWith(t, store, func(o *app.Options) { o.MaxInFlight = bound })
	r := e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "ada@example.com"})
	if r.status != 200 {
		t.Fatalf("initiate: %d %s", r.status, r.raw)
	}
	path := "/methods/email/verifiers/" + r.str("verificationId")
	auth := map[string]string{"Authorization": "Bearer " + e.token}

	store.closed.Store(true)
	var held sync.WaitGroup
	statuses := make(chan int, bound)
	for range bound {
		held.Go(func() { statuses <- e.doWith("GET", path, nil, auth).status })
	}
	for range bound {
		<-store.entered // both hold a place now
	}

	for _, refused := range []*response{
		e.do("GET", path, nil),
		e.do("POST", "/methods/email/actions/initiate", map[string]any{"consumer": "bob@example.com"}),
	} {
		if refused.status != 503 || refused.str("code") != "unavailable" || refused.header.Get("Retry-After") != "1" {
			t.Errorf("over the bound: %d %q Retry-After %q, want 503 unavailable with Retry-After 1", refused.status, refused.str("code"), refused.header.Get("Retry-After"))
		}
	}
	if r := e.doWith("GET", "/healthz", nil, nil); r.status != 200 {
		t.Errorf("healthz while overloaded: %d, want 200", r.status)
	}

	store.closed.Store(false)
	close(store.release)
	held.Wait()
	close(statuses)
	for s := range statuses {
		if s != 200 {
			t.Errorf("held request: %d, want 200", s)
		}
	}
	if r := e.do("GET", path, nil); r.status != 200 {
		t.Errorf("after the held requests finished: %d %s, want 200", r.status, r.raw)
	}
}
