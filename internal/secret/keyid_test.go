package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"testing"
)

// legacyRefreshHash is what Tessera before HMAC key ids stored for the
// refresh token "rt_legacy" under the key testKey(1): the bare
// HMAC-SHA256, recorded from that version.
const legacyRefreshHash = "37ad037a025532435485ed94473fdfcf9a82dee233fee07d90d19310f87f42a6"

// testKey is a test key, different for each b, whose bytes differ as a
// random key's do (keys of one repeated byte are refused as placeholders).
func testKey(b byte) []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func TestHMACKeyRotation(t *testing.T) {
	oldKey, newKey := testKey(1), testKey(3)
	enc := []Key{{ID: "k1", Key: testKey(2)}}

	before, err := NewKeyring(oldKey, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(before.Hash("refresh-token", "rt_legacy")); got != legacyRefreshHash {
		t.Fatalf("a key without id hashes to %s, want the stored form of before key ids %s", got, legacyRefreshHash)
	}
	stored, _ := hex.DecodeString(legacyRefreshHash)

	// The operator adds a key with an id in front of the old one.
	keys, err := ParseMACKeys("h2:" + base64.StdEncoding.EncodeToString(newKey) + "," + base64.StdEncoding.EncodeToString(oldKey))
	if err != nil {
		t.Fatal(err)
	}
	after, err := New(keys, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !after.Check(stored, "refresh-token", "rt_legacy") {
		t.Error("a value stored before key ids no longer checks once a newer key is added")
	}
	if after.Check(stored, "refresh-token", "rt_other") {
		t.Error("an old value checks against other input")
	}
	if hs := after.Hashes("refresh-token", "rt_legacy"); len(hs) != 2 || !bytes.Equal(hs[1], stored) {
		t.Errorf("Hashes does not offer the old key's stored form: %x", hs)
	}
	fresh := after.Hash("refresh-token", "rt_new")
	if !bytes.HasPrefix(fresh, []byte("\x02h2")) || len(fresh) != 3+32 {
		t.Errorf("a new value is %x, want it tagged with h2", fresh)
	}
	if !after.Check(fresh, "refresh-token", "rt_new") {
		t.Error("a new value does not check")
	}
	if !bytes.Equal(after.MAC("x"), mac(newKey, []string{"x"})) {
		t.Error("MAC does not use the newest key")
	}

	// Once the old key is removed, its values stop checking; new ones do not.
	retired, err := New([]Key{{ID: "h2", Key: newKey}}, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if retired.Check(stored, "refresh-token", "rt_legacy") {
		t.Error("a value of a removed key still checks")
	}
	if !retired.Check(fresh, "refresh-token", "rt_new") {
		t.Error("a value of the remaining key does not check")
	}
	for _, bad := range [][]byte{nil, {}, {5, 'h'}, append([]byte{9}, fresh[1:]...)} {
		if retired.Check(bad, "refresh-token", "rt_new") {
			t.Errorf("malformed stored value %x checks", bad)
		}
	}
}

func TestParseMACKeys(t *testing.T) {
	b := base64.StdEncoding.EncodeToString(testKey(1))
	for _, tc := range []struct {
		in   string
		ids  []string
		fail bool
	}{
		{in: b, ids: []string{""}},
		{in: "h1:" + b, ids: []string{"h1"}},
		{in: "h2:" + b + "\nh1:" + b, ids: []string{"h2", "h1"}},
		{in: "h2:" + b + "," + b, ids: []string{"h2", ""}},
		{in: b + "," + b, fail: true},
		{in: "h1:" + b + ",h1:" + b, fail: true},
		{in: ":" + b, fail: true},
		{in: "h1:short", fail: true},
		{in: "", fail: true},
	} {
		keys, err := ParseMACKeys(tc.in)
		if tc.fail {
			if err == nil {
				t.Errorf("ParseMACKeys(%.12q…) = %v, want an error", tc.in, keys)
			}
			continue
		}
		if err != nil || len(keys) != len(tc.ids) {
			t.Errorf("ParseMACKeys(%.12q…): %v, %v", tc.in, keys, err)
			continue
		}
		for i, id := range tc.ids {
			if keys[i].ID != id {
				t.Errorf("ParseMACKeys(%.12q…)[%d].ID = %q, want %q", tc.in, i, keys[i].ID, id)
			}
		}
	}
}
