package secret_test

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/tessera-id/tessera/internal/secret"
)

// key is a test key, different for each b; its bytes differ, as a random
// key's do (ParseKey refuses one repeated byte as a placeholder).
func key(b byte) []byte {
	k := make([]byte, secret.KeySize)
	for i := range k {
		k[i] = b + byte(i)
	}
	return k
}

func newKeyring(t *testing.T, keys ...secret.Key) *secret.Keyring {
	t.Helper()
	k, err := secret.NewKeyring(key(0xAA), keys, nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

var (
	k1 = secret.Key{ID: "k1", Key: key(1)}
	k2 = secret.Key{ID: "k2", Key: key(2)}
)

func TestSealOpenRoundTrip(t *testing.T) {
	ring := newKeyring(t, k1)
	tests := []struct {
		name      string
		plain, ad []byte
	}{
		{"text", []byte("JBSWY3DPEHPK3PXP"), []byte("totp\x00owner\x00alice")},
		{"empty plaintext", []byte{}, []byte("ad")},
		{"no associated data", []byte("body"), nil},
		{"binary", bytes.Repeat([]byte{0, 0xff}, 1000), []byte("message\x00id")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sealed, err := ring.Seal(tc.plain, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.plain) >= 8 && bytes.Contains(sealed, tc.plain) {
				t.Error("sealed value contains the plaintext")
			}
			got, err := ring.Open(sealed, tc.ad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plain) {
				t.Errorf("Open = %q, want %q", got, tc.plain)
			}
			again, err := ring.Seal(tc.plain, tc.ad)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(again, sealed) {
				t.Error("sealing twice gave the same bytes: the nonce does not change")
			}
		})
	}
}

func TestOpenWithOtherAssociatedDataFails(t *testing.T) {
	ring := newKeyring(t, k1)
	sealed, err := ring.Seal([]byte("secret"), []byte("totp\x00o\x00alice"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range [][]byte{nil, []byte("totp\x00o\x00bob"), []byte("totp\x00o\x00alic"), []byte("totp\x00o\x00alice\x00")} {
		if got, err := ring.Open(sealed, ad); err == nil {
			t.Errorf("Open with ad %q = %q, want an error", ad, got)
		}
	}
}

func TestOpenTampered(t *testing.T) {
	ring := newKeyring(t, k1)
	ad := []byte("ad")
	sealed, err := ring.Seal([]byte("the plaintext"), ad)
	if err != nil {
		t.Fatal(err)
	}
	// Layout: id length, id ("k1"), 12-byte nonce, ciphertext and tag.
	tests := []struct {
		name   string
		mutate func(b []byte) []byte
	}{
		{"flip id length", func(b []byte) []byte { b[0] ^= 1; return b }},
		{"flip id", func(b []byte) []byte { b[2] ^= 1; return b }},
		{"flip nonce", func(b []byte) []byte { b[3] ^= 1; return b }},
		{"flip ciphertext", func(b []byte) []byte { b[3+12] ^= 0x80; return b }},
		{"flip tag", func(b []byte) []byte { b[len(b)-1] ^= 1; return b }},
		{"drop last byte", func(b []byte) []byte { return b[:len(b)-1] }},
		{"append a byte", func(b []byte) []byte { return append(b, 0) }},
		{"only the header", func(b []byte) []byte { return b[:3] }},
		{"header and nonce", func(b []byte) []byte { return b[:3+12] }},
		{"empty", func(b []byte) []byte { return nil }},
		{"id length past the end", func(b []byte) []byte { return []byte{200, 'k'} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.mutate(bytes.Clone(sealed))
			if got, err := ring.Open(b, ad); err == nil {
				t.Errorf("Open = %q, want an error", got)
			}
		})
	}
	for i := range sealed {
		b := bytes.Clone(sealed)
		b[i] ^= 0x10
		if got, err := ring.Open(b, ad); err == nil {
			t.Errorf("flipping byte %d: Open = %q, want an error", i, got)
		}
	}
}

func TestKeyRotation(t *testing.T) {
	ad := []byte("ad")
	old := newKeyring(t, k1)
	rotated := newKeyring(t, k2, k1)
	onlyNew := newKeyring(t, k2)

	sealedOld, err := old.Seal([]byte("before rotation"), ad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := rotated.Open(sealedOld, ad)
	if err != nil || string(got) != "before rotation" {
		t.Fatalf("rotated keyring opens an old value: %q, %v", got, err)
	}
	if rotated.CurrentKeyID() != "k2" {
		t.Errorf("CurrentKeyID = %q, want k2 (the first key)", rotated.CurrentKeyID())
	}
	sealedNew, err := rotated.Seal([]byte("after rotation"), ad)
	if err != nil {
		t.Fatal(err)
	}
	if id := string(sealedNew[1 : 1+int(sealedNew[0])]); id != "k2" {
		t.Errorf("new value sealed with %q, want k2", id)
	}
	if got, err := onlyNew.Open(sealedNew, ad); err != nil || string(got) != "after rotation" {
		t.Errorf("k2 alone opens a new value: %q, %v", got, err)
	}
	// A keyring without the sealing key names it in the error.
	if _, err := old.Open(sealedNew, ad); err == nil || !strings.Contains(err.Error(), "k2") {
		t.Errorf("old keyring opening a k2 value: %v, want an error naming k2", err)
	}
	if _, err := onlyNew.Open(sealedOld, ad); err == nil || !strings.Contains(err.Error(), "k1") {
		t.Errorf("k2-only keyring opening a k1 value: %v, want an error naming k1", err)
	}
	// The same id with other key material does not open it either.
	impostor := newKeyring(t, secret.Key{ID: "k1", Key: key(9)})
	if got, err := impostor.Open(sealedOld, ad); err == nil {
		t.Errorf("other key under the same id opened it: %q", got)
	}
}

func TestHash(t *testing.T) {
	ring := newKeyring(t, k1)
	other, err := secret.NewKeyring(key(0xBB), []secret.Key{k1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := ring.Hash("verification-code", "owner", "id", "123456")
	if len(h) != 32 {
		t.Fatalf("hash is %d bytes, want 32", len(h))
	}
	if !secret.Equal(h, ring.Hash("verification-code", "owner", "id", "123456")) {
		t.Error("the same parts hash differently")
	}
	if secret.Equal(h, other.Hash("verification-code", "owner", "id", "123456")) {
		t.Error("another HMAC key gives the same hash")
	}
	distinct := [][]string{
		{"ab", "c"},
		{"a", "bc"},
		{"abc"},
		{"abc", ""},
		{"", "abc"},
		{"a", "b", "c"},
		{},
		{""},
		{"", ""},
	}
	seen := map[string][]string{}
	for _, parts := range distinct {
		k := string(ring.Hash(parts...))
		if prev, dup := seen[k]; dup {
			t.Errorf("Hash(%q) == Hash(%q)", parts, prev)
		}
		seen[k] = parts
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		a, b []byte
		want bool
	}{
		{[]byte("abc"), []byte("abc"), true},
		{[]byte("abc"), []byte("abd"), false},
		{[]byte("abc"), []byte("ab"), false},
		{[]byte("abc"), nil, false},
	}
	for _, tc := range tests {
		if got := secret.Equal(tc.a, tc.b); got != tc.want {
			t.Errorf("Equal(%q, %q) = %v", tc.a, tc.b, got)
		}
	}
}

func TestParseKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(0xf8 + i) // encodes with + / (standard) or - _ (URL)
	}
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "standard padded", in: base64.StdEncoding.EncodeToString(raw)},
		{name: "standard unpadded", in: base64.RawStdEncoding.EncodeToString(raw)},
		{name: "URL padded", in: base64.URLEncoding.EncodeToString(raw)},
		{name: "URL unpadded", in: base64.RawURLEncoding.EncodeToString(raw)},
		{name: "surrounding whitespace", in: "  " + base64.StdEncoding.EncodeToString(raw) + "\n"},

		{name: "empty", in: "", wantErr: true},
		{name: "not base64", in: "this is not base64!", wantErr: true},
		{name: "16 bytes", in: base64.StdEncoding.EncodeToString(raw[:16]), wantErr: true},
		{name: "31 bytes", in: base64.StdEncoding.EncodeToString(raw[:31]), wantErr: true},
		{name: "33 bytes", in: base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 1)), wantErr: true},
		{name: "hex", in: strings.Repeat("ab", 32), wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := secret.ParseKey(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseKey(%q) = %x, want an error", tc.in, got)
				}
				if tc.in != "" && strings.Contains(err.Error(), strings.TrimSpace(tc.in)) {
					t.Errorf("error %q repeats the key", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKey(%q): %v", tc.in, err)
			}
			if !bytes.Equal(got, raw) {
				t.Errorf("ParseKey(%q) = %x, want %x", tc.in, got, raw)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	b1, b2 := base64.StdEncoding.EncodeToString(key(1)), base64.StdEncoding.EncodeToString(key(2))
	short := base64.StdEncoding.EncodeToString(key(3)[:16])
	tests := []struct {
		name    string
		in      string
		wantIDs []string
		errHas  string // the error must contain this; "" with wantIDs set means no error
	}{
		{name: "one", in: "k1:" + b1, wantIDs: []string{"k1"}},
		{name: "comma separated, order kept", in: "k2:" + b2 + ",k1:" + b1, wantIDs: []string{"k2", "k1"}},
		{name: "one per line with blanks and spaces", in: "\n k2:" + b2 + " \n\n\tk1:" + b1 + "\n", wantIDs: []string{"k2", "k1"}},
		{name: "trailing comma", in: "k1:" + b1 + ",", wantIDs: []string{"k1"}},

		{name: "empty", in: "", errHas: "no keys"},
		{name: "only separators", in: " ,\n, ", errHas: "no keys"},
		{name: "key without id", in: b1, errHas: "id:base64"},
		{name: "second key without id", in: "k1:" + b1 + "," + b2, errHas: "id:base64"},
		{name: "short key", in: "k1:" + b1 + ",old:" + short, errHas: "old"},
		{name: "not base64", in: "k1:???", errHas: "k1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := secret.ParseKeys(tc.in)
			if tc.errHas != "" {
				if err == nil {
					t.Fatalf("ParseKeys = %v, want an error", keys)
				}
				if !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("error %q does not mention %q", err, tc.errHas)
				}
				// Start-up errors end up in logs: they must not carry key material.
				for _, k := range []string{b1, b2, short} {
					if strings.Contains(err.Error(), k) {
						t.Errorf("error %q repeats a key", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
				if len(k.Key) != secret.KeySize {
					t.Errorf("key %s is %d bytes", k.ID, len(k.Key))
				}
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Errorf("ids = %q, want %q", ids, tc.wantIDs)
			}
			if tc.wantIDs[0] == "k2" && !bytes.Equal(keys[0].Key, key(2)) {
				t.Errorf("k2 decoded to %x", keys[0].Key)
			}
		})
	}
}

func TestNewKeyring(t *testing.T) {
	tests := []struct {
		name    string
		mac     []byte
		keys    []secret.Key
		wantErr bool
	}{
		{name: "one key", mac: key(0), keys: []secret.Key{k1}},
		{name: "two keys", mac: key(0), keys: []secret.Key{k2, k1}},
		{name: "255-character id", mac: key(0), keys: []secret.Key{{ID: strings.Repeat("a", 255), Key: key(1)}}},
		{name: "id with dots and dashes", mac: key(0), keys: []secret.Key{{ID: "2025-01.a_b", Key: key(1)}}},

		{name: "short hmac key", mac: key(0)[:31], keys: []secret.Key{k1}, wantErr: true},
		{name: "long hmac key", mac: append(key(0), 0), keys: []secret.Key{k1}, wantErr: true},
		{name: "no hmac key", mac: nil, keys: []secret.Key{k1}, wantErr: true},
		{name: "no encryption keys", mac: key(0), keys: nil, wantErr: true},
		{name: "16-byte encryption key", mac: key(0), keys: []secret.Key{{ID: "k1", Key: key(1)[:16]}}, wantErr: true},
		{name: "33-byte encryption key", mac: key(0), keys: []secret.Key{{ID: "k1", Key: append(key(1), 1)}}, wantErr: true},
		{name: "bad second key", mac: key(0), keys: []secret.Key{k1, {ID: "k2", Key: key(2)[:24]}}, wantErr: true},
		{name: "duplicate ids", mac: key(0), keys: []secret.Key{k1, {ID: "k1", Key: key(5)}}, wantErr: true},
		{name: "empty id", mac: key(0), keys: []secret.Key{{ID: "", Key: key(1)}}, wantErr: true},
		{name: "id with colon", mac: key(0), keys: []secret.Key{{ID: "a:b", Key: key(1)}}, wantErr: true},
		{name: "id with comma", mac: key(0), keys: []secret.Key{{ID: "a,b", Key: key(1)}}, wantErr: true},
		{name: "id with space", mac: key(0), keys: []secret.Key{{ID: "a b", Key: key(1)}}, wantErr: true},
		{name: "id with newline", mac: key(0), keys: []secret.Key{{ID: "a\nb", Key: key(1)}}, wantErr: true},
		{name: "256-character id", mac: key(0), keys: []secret.Key{{ID: strings.Repeat("a", 256), Key: key(1)}}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ring, err := secret.NewKeyring(tc.mac, tc.keys, nil)
			if tc.wantErr {
				if err == nil {
					t.Fatal("NewKeyring succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ring.CurrentKeyID() != tc.keys[0].ID {
				t.Errorf("CurrentKeyID = %q, want %q", ring.CurrentKeyID(), tc.keys[0].ID)
			}
			sealed, err := ring.Seal([]byte("x"), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := ring.Open(sealed, nil); err != nil || string(got) != "x" {
				t.Errorf("round trip: %q, %v", got, err)
			}
		})
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, bytes.ErrTooLarge }

func TestSealFailingRandom(t *testing.T) {
	ring, err := secret.NewKeyring(key(0), []secret.Key{k1}, failingReader{})
	if err != nil {
		t.Fatal(err)
	}
	if sealed, err := ring.Seal([]byte("x"), nil); err == nil {
		t.Errorf("Seal with a failing random source = %x, want an error", sealed)
	}
}

func TestNewKey(t *testing.T) {
	a, b := secret.NewKey(), secret.NewKey()
	if a == b {
		t.Error("two new keys are equal")
	}
	for _, k := range []string{a, b} {
		if _, err := secret.ParseKey(k); err != nil {
			t.Errorf("NewKey %q does not parse: %v", k, err)
		}
	}
}
