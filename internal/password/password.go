// Package password hashes passwords with argon2id and stores the
// parameters with each hash (PHC string format), so they can be raised
// later without breaking old hashes. A semaphore bounds how many hashes run
// at once: each takes Memory KiB, and a login flood must not exhaust it.
package password

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id's cost parameters.
type Params struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// OWASP is the OWASP Password Storage Cheat Sheet's argon2id setting:
// 19 MiB, 2 passes, 1 thread.
var OWASP = Params{Memory: 19 * 1024, Time: 2, Threads: 1}

const (
	saltLen = 16
	keyLen  = 32
)

// Hasher hashes and checks passwords.
type Hasher struct {
	Params Params
	slots  chan struct{}
	dummy  string // a hash of nothing, to spend the same time on unknown accounts
}

// NewHasher returns a hasher with params that runs at most concurrent
// hashes at once.
func NewHasher(params Params, concurrent int) *Hasher {
	if concurrent < 1 {
		concurrent = 1
	}
	h := &Hasher{Params: params, slots: make(chan struct{}, concurrent)}
	h.dummy, _ = h.Hash(context.Background(), "tessera-dummy-password")
	return h
}

// Hash returns the PHC string of an argon2id hash of pw.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key, err := h.derive(ctx, pw, salt, h.Params)
	if err != nil {
		return "", err
	}
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, h.Params.Memory, h.Params.Time, h.Params.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify reports whether pw matches encoded. With an empty encoded (an
// unknown account) it checks against a dummy hash, so the answer takes as
// long as for a real account, and is false.
func (h *Hasher) Verify(ctx context.Context, pw, encoded string) (bool, error) {
	if encoded == "" {
		_, err := h.Verify(ctx, pw, h.dummy)
		return false, err
	}
	p, salt, want, err := parse(encoded)
	if err != nil || len(want) != keyLen {
		return h.verifyLegacy(ctx, pw, encoded)
	}
	got, err := h.derive(ctx, pw, salt, p)
	if err != nil {
		return false, err
	}
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// NeedsRehash reports whether encoded was made with other parameters, or
// by another scheme (an imported user's first login).
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, key, err := parse(encoded)
	return err != nil || p != h.Params || len(key) != keyLen
}

// verifyLegacy checks pw against a hash an imported user brought along
// (see legacy.go), holding a slot like any other hash.
func (h *Hasher) verifyLegacy(ctx context.Context, pw, encoded string) (bool, error) {
	l, err := parseLegacy(encoded)
	if err != nil {
		return false, err
	}
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-h.slots }()
	return l.verify(pw)
}

func (h *Hasher) derive(ctx context.Context, pw string, salt []byte, p Params) ([]byte, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-h.slots }()
	return argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, keyLen), nil
}

func parse(encoded string) (Params, []byte, []byte, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return Params{}, nil, nil, errors.New("not an argon2id hash")
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, errors.New("unsupported argon2 version")
	}
	var p Params
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil || p.Memory == 0 || p.Time == 0 || p.Threads == 0 {
		return Params{}, nil, nil, errors.New("bad argon2 parameters")
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(key) == 0 {
		return Params{}, nil, nil, errors.New("bad argon2 encoding")
	}
	return p, salt, key, nil
}
