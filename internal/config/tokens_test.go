package config

import (
	"strings"
	"testing"
	"time"
)

func TestTokenSettings(t *testing.T) {
	base := func(extra map[string]string) map[string]string {
		vars := map[string]string{"TESSERA_DATA_DIR": t.TempDir()}
		for k, v := range extra {
			vars[k] = v
		}
		return vars
	}
	c, err := Load(env(base(nil)))
	if err != nil {
		t.Fatal(err)
	}
	if c.IDTokenAlg != "EdDSA" || c.KeyPublishAhead != 10*time.Minute || c.KeyRotation != 0 ||
		len(c.IDTokenClaims) != 4 || c.IDTokenClaims["email"] || !c.IDTokenClaims["sid"] || !c.IDTokenClaims["acr"] {
		t.Errorf("defaults: alg %s, ahead %s, rotation %s, claims %v", c.IDTokenAlg, c.KeyPublishAhead, c.KeyRotation, c.IDTokenClaims)
	}
	c, err = Load(env(base(map[string]string{
		"TESSERA_ID_TOKEN_CLAIMS": "email, email_verified,phone_number", "TESSERA_ID_TOKEN_ALG": "RS256",
		"TESSERA_KEY_PUBLISH_AHEAD": "30m", "TESSERA_KEY_ROTATION": "90d",
	})))
	if err != nil {
		t.Fatal(err)
	}
	// sid always: Tessera finds the session by it.
	if c.IDTokenAlg != "RS256" || c.KeyPublishAhead != 30*time.Minute || c.KeyRotation != 90*24*time.Hour ||
		!c.IDTokenClaims["email"] || !c.IDTokenClaims["phone_number"] || !c.IDTokenClaims["sid"] || c.IDTokenClaims["acr"] {
		t.Errorf("set: alg %s, ahead %s, rotation %s, claims %v", c.IDTokenAlg, c.KeyPublishAhead, c.KeyRotation, c.IDTokenClaims)
	}
	settings := map[string]string{}
	for _, s := range c.Settings() {
		settings[s.Name] = s.Value
	}
	if settings["TESSERA_KEY_ROTATION"] != "90d" || settings["TESSERA_ID_TOKEN_CLAIMS"] != "email,email_verified,phone_number,sid" {
		t.Errorf("settings %v", settings)
	}

	for name, bad := range map[string]string{
		"TESSERA_ID_TOKEN_CLAIMS":   "email,name",
		"TESSERA_ID_TOKEN_ALG":      "HS256",
		"TESSERA_KEY_PUBLISH_AHEAD": "1m",
		"TESSERA_KEY_ROTATION":      "12h",
	} {
		_, err := Load(env(base(map[string]string{name: bad})))
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s=%s: %v, want an error naming it", name, bad, err)
		}
	}
}
