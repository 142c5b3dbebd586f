// Package apiclient manages the API clients of the verification API: the
// services that call Tessera with a bearer token. Tokens are random, shown
// once, and stored only as keyed hashes.
package apiclient

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/google/uuid"

	"github.com/tessera-id/tessera"
	"github.com/tessera-id/tessera/internal/secret"
	"github.com/tessera-id/tessera/internal/verify"
)

// tokenPrefix makes Tessera tokens recognisable, for example to secret
// scanners, and lets a lookup skip what cannot be one.
const tokenPrefix = "tsk_"

// CacheTTL is how long a successful token lookup is remembered. Every API
// call authenticates, and this spares each one a database read; the price
// is that revoking a client takes effect within CacheTTL.
const CacheTTL = 5 * time.Second

// maxCached bounds the cache; past it the cache starts over.
const maxCached = 10_000

// Registry creates and authenticates API clients.
type Registry struct {
	Store tessera.Store
	Keys  *secret.Keyring
	Now   func() time.Time
	// PolicyChanged, when set, hears the client id whose sending policy
	// was set or cleared here (the engine's ForgetSendingPolicy).
	PolicyChanged func(clientID string)

	mu    sync.Mutex
	cache map[string]cached // by token hash; only tokens that were valid
}

type cached struct {
	client  *tessera.Client
	expires time.Time
}

// Create makes a client named name and returns it with its token, which is
// not stored anywhere and cannot be shown again.
func (r *Registry) Create(ctx context.Context, name string) (*tessera.Client, string, error) {
	return r.create(ctx, name, false)
}

// CreateAdmin is Create for a client with the admin scope: its token also
// opens the admin API, which reads and changes every end-user account.
func (r *Registry) CreateAdmin(ctx context.Context, name string) (*tessera.Client, string, error) {
	return r.create(ctx, name, true)
}

func (r *Registry) create(ctx context.Context, name string, admin bool) (*tessera.Client, string, error) {
	if err := checkName(name); err != nil {
		return nil, "", tessera.Invalid(tessera.FieldError{Path: "name", Error: err.Error()})
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, "", err
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	c := &tessera.Client{ID: uuid.NewString(), Name: name, TokenHash: r.hash(token), Admin: admin, CreatedAt: r.Now().UTC()}
	if err := r.Store.CreateClient(ctx, c); err != nil {
		return nil, "", err
	}
	return c, token, nil
}

// Authenticate returns the client a bearer token belongs to; EUNAUTHORIZED
// for a token that is unknown or revoked.
func (r *Registry) Authenticate(ctx context.Context, token string) (*tessera.Client, error) {
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid API token")
	}
	// The token's hash under each HMAC key, newest first: a token made
	// before the newest key was added is stored under an older one.
	hashes := r.Keys.Hashes(tokenHashPurpose, token)
	hash := hashes[0]
	now := time.Now()
	r.mu.Lock()
	hit, ok := r.cache[string(hash)]
	r.mu.Unlock()
	if ok && now.Before(hit.expires) {
		return hit.client, nil
	}
	var c *tessera.Client
	var err error
	for _, h := range hashes {
		if c, err = r.Store.ClientByTokenHash(ctx, h); tessera.ErrorCode(err) != tessera.ENOTFOUND {
			break
		}
	}
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return nil, tessera.Errorf(tessera.EUNAUTHORIZED, "Invalid API token")
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.cache == nil || len(r.cache) >= maxCached {
		r.cache = map[string]cached{}
	}
	r.cache[string(hash)] = cached{client: c, expires: now.Add(CacheTTL)}
	r.mu.Unlock()
	return c, nil
}

// Revoke revokes a client by id or name. This instance forgets it at once;
// other instances within CacheTTL.
func (r *Registry) Revoke(ctx context.Context, idOrName string) error {
	if err := r.Store.RevokeClient(ctx, idOrName, r.Now()); err != nil {
		return err
	}
	r.mu.Lock()
	r.cache = nil
	r.mu.Unlock()
	return nil
}

const tokenHashPurpose = "api-client-token"

func (r *Registry) hash(token string) []byte { return r.Keys.Hash(tokenHashPurpose, token) }

func checkName(name string) error {
	if name == "" || len(name) > 64 {
		return errors.New("must be 1 to 64 characters")
	}
	for _, c := range name {
		if !(unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("-_.", c)) {
			return fmt.Errorf("may contain letters, digits, '-', '_' and '.' only, not %q", c)
		}
	}
	return nil
}

// Find returns the client with that id or name; ENOTFOUND if none.
func (r *Registry) Find(ctx context.Context, idOrName string) (*tessera.Client, error) {
	clients, err := r.Store.Clients(ctx)
	if err != nil {
		return nil, err
	}
	for _, c := range clients {
		if c.ID == idOrName || c.Name == idOrName {
			return c, nil
		}
	}
	return nil, tessera.Errorf(tessera.ENOTFOUND, "No API client %q", idOrName)
}

// SetPolicy gives a client (by id or name) a sending policy: the fromEmail
// addresses and domains it may use, and whether it may send registered
// templates only. This instance's engine applies it to the next initiate
// (through PolicyChanged), other instances within verify.SendingPolicyTTL.
func (r *Registry) SetPolicy(ctx context.Context, idOrName string, fromAllow []string, templatesOnly bool) (*tessera.SendingPolicy, error) {
	c, err := r.Find(ctx, idOrName)
	if err != nil {
		return nil, err
	}
	allow, err := verify.NormalizeFromAllow(fromAllow)
	if err != nil {
		return nil, tessera.Invalid(tessera.FieldError{Path: "fromAllow", Error: err.Error()})
	}
	p := &tessera.SendingPolicy{ClientID: c.ID, FromAllow: allow, TemplatesOnly: templatesOnly, UpdatedAt: r.Now().UTC()}
	if err := r.Store.SetSendingPolicy(ctx, p); err != nil {
		return nil, err
	}
	r.policyChanged(c.ID)
	return p, nil
}

// Policy returns a client's sending policy, nil when it has none.
func (r *Registry) Policy(ctx context.Context, idOrName string) (*tessera.Client, *tessera.SendingPolicy, error) {
	c, err := r.Find(ctx, idOrName)
	if err != nil {
		return nil, nil, err
	}
	p, err := r.Store.SendingPolicy(ctx, c.ID)
	if tessera.ErrorCode(err) == tessera.ENOTFOUND {
		return c, nil, nil
	}
	return c, p, err
}

// ClearPolicy removes a client's sending policy: it may send anything
// again. A client without one is not an error.
func (r *Registry) ClearPolicy(ctx context.Context, idOrName string) error {
	c, err := r.Find(ctx, idOrName)
	if err != nil {
		return err
	}
	if err := r.Store.DeleteSendingPolicy(ctx, c.ID); err != nil && tessera.ErrorCode(err) != tessera.ENOTFOUND {
		return err
	}
	r.policyChanged(c.ID)
	return nil
}

func (r *Registry) policyChanged(clientID string) {
	if r.PolicyChanged != nil {
		r.PolicyChanged(clientID)
	}
}
