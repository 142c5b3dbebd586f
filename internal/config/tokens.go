package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-id/tessera/internal/token"
)

// Token settings' defaults.
const (
	DefaultIDTokenAlg  = token.AlgEdDSA
	DefaultKeyRotation = "off"
)

// minKeyRotation keeps automatic rotation from piling up keys that are
// each published for an ID token lifetime after they retire.
const minKeyRotation = 24 * time.Hour

// loadTokens reads the ID token's claims and algorithm and the signing
// keys' life cycle.
func (c *Config) loadTokens(get func(name, def string) string, bad func(string, ...any)) {
	var err error
	if c.IDTokenClaims, err = token.ParseClaims(get("TESSERA_ID_TOKEN_CLAIMS", token.DefaultClaims)); err != nil {
		bad("TESSERA_ID_TOKEN_CLAIMS: %v", err)
	}
	c.IDTokenAlg = get("TESSERA_ID_TOKEN_ALG", DefaultIDTokenAlg)
	known := false
	for _, a := range token.Algorithms {
		known = known || a == c.IDTokenAlg
	}
	if !known {
		bad("TESSERA_ID_TOKEN_ALG: must be one of %s, not %q", strings.Join(token.Algorithms, ", "), c.IDTokenAlg)
	}
	c.KeyPublishAhead = duration(get("TESSERA_KEY_PUBLISH_AHEAD", token.DefaultPublishAhead.String()), "TESSERA_KEY_PUBLISH_AHEAD", bad)
	if c.KeyPublishAhead > 0 && c.KeyPublishAhead < token.MinPublishAhead {
		bad("TESSERA_KEY_PUBLISH_AHEAD: must be at least %s (verifiers cache the JWKS for %s, instances read the keys every minute), not %s",
			token.MinPublishAhead, token.JWKSMaxAge, c.KeyPublishAhead)
	}
	if v := get("TESSERA_KEY_ROTATION", DefaultKeyRotation); v != "off" {
		d, err := days(v)
		if err != nil || d < minKeyRotation {
			bad("TESSERA_KEY_ROTATION: must be off or a period of at least 1d, such as 90d or 2160h, not %q", v)
		}
		c.KeyRotation = d
		if d <= c.KeyPublishAhead {
			bad("TESSERA_KEY_ROTATION: %s must be longer than TESSERA_KEY_PUBLISH_AHEAD (%s)", v, c.KeyPublishAhead)
		}
	}
}

// days reads a duration that may also be whole days ("90d").
func days(s string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		d, err := strconv.Atoi(n)
		if err != nil || d < 0 {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(d) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// tokenSettings lists the token settings for Settings.
func (c *Config) tokenSettings() []Setting {
	rotation := "off"
	if c.KeyRotation > 0 {
		rotation = c.KeyRotation.String()
		if c.KeyRotation%(24*time.Hour) == 0 {
			rotation = strconv.Itoa(int(c.KeyRotation/(24*time.Hour))) + "d"
		}
	}
	return []Setting{
		{"TESSERA_ID_TOKEN_CLAIMS", token.FormatClaims(c.IDTokenClaims)},
		{"TESSERA_ID_TOKEN_ALG", c.IDTokenAlg},
		{"TESSERA_KEY_PUBLISH_AHEAD", c.KeyPublishAhead.String()},
		{"TESSERA_KEY_ROTATION", rotation},
	}
}
