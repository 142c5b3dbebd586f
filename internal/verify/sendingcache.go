package verify

import (
	"context"
	"sync"
	"time"

	"github.com/tessera-id/tessera"
)

// SendingPolicyTTL is how long an engine remembers a client's sending
// policy (or that it has none). Every initiate applies the policy, and this
// spares each one a database read; the price is that a policy changed on
// another instance (or by `tessera client policy`, another process) applies
// here within SendingPolicyTTL, as a revoked API client stops within
// apiclient.CacheTTL. A change through this engine's Registry applies at once
// (ForgetSendingPolicy).
const SendingPolicyTTL = 5 * time.Second

// maxCachedPolicies bounds the cache; past it the cache starts over.
const maxCachedPolicies = 10_000

// PolicyCache remembers sending policies for SendingPolicyTTL. An engine
// and its copies (the transaction-bound engines of the account service)
// share one through Engine.Policies.
type PolicyCache struct {
	mu sync.Mutex
	m  map[string]cachedPolicy // by client id
}

type cachedPolicy struct {
	policy  *tessera.SendingPolicy // nil: the client has none
	expires time.Time
}

// sendingPolicy returns owner's policy, nil when it has none.
func (e *Engine) sendingPolicy(ctx context.Context, owner string) (*tessera.SendingPolicy, error) {
	c := e.Policies
	if c == nil {
		return e.readSendingPolicy(ctx, owner)
	}
	now := e.now()
	c.mu.Lock()
	hit, ok := c.m[owner]
	c.mu.Unlock()
	if ok && now.Before(hit.expires) {
		return hit.policy, nil
	}
	p, err := e.readSendingPolicy(ctx, owner)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedPolicies {
		c.m = map[string]cachedPolicy{}
	}
	c.m[owner] = cachedPolicy{policy: p, expires: now.Add(SendingPolicyTTL)}
	c.mu.Unlock()
	return p, nil
}

func (e *Engine) readSendingPolicy(ctx context.Context, owner string) (*tessera.SendingPolicy, error) {
	p, err := e.Store.SendingPolicy(ctx, owner)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, nil
	}
	return p, err
}

// ForgetSendingPolicy drops what the engine remembers of a client's
// sending policy, so that a change made here applies to the next initiate.
func (e *Engine) ForgetSendingPolicy(clientID string) {
	if c := e.Policies; c != nil {
		c.mu.Lock()
		delete(c.m, clientID)
		c.mu.Unlock()
	}
}
