// Package secret holds Tessera's server keys: HMAC keys that turn codes
// and tokens into hashes that are useless without them, and AES-256-GCM
// keys that encrypt what must be read back (TOTP secrets, message bodies
// waiting in the outbox). Both kinds carry ids so they can rotate: the
// newest key makes new values, every configured key still checks or opens
// the values it made.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
)

// KeySize is the size of every key: 32 bytes (HMAC-SHA256, AES-256).
const KeySize = 32

// Key is one encryption key and its id.
type Key struct {
	ID  string
	Key []byte
}

// Keyring hashes and encrypts with the server's keys. It is safe for
// concurrent use.
type Keyring struct {
	macs    []Key // newest first
	current string
	aeads   map[string]cipher.AEAD
	rand    io.Reader
}

// NewKeyring returns a keyring that hashes with one HMAC key without an id
// (its hashes are the bare 32-byte MACs every Tessera before key ids
// stored) and encrypts with the first of keys; every key in keys can
// decrypt. random supplies nonces (crypto/rand.Reader when nil).
func NewKeyring(macKey []byte, keys []Key, random io.Reader) (*Keyring, error) {
	return New([]Key{{Key: macKey}}, keys, random)
}

// New returns a keyring that hashes with the first of macKeys and checks
// hashes made by any of them, and encrypts with the first of encKeys. One
// HMAC key may have the empty id: the key from before HMAC keys had ids.
func New(macKeys, encKeys []Key, random io.Reader) (*Keyring, error) {
	if len(macKeys) == 0 {
		return nil, errors.New("at least one hmac key is needed")
	}
	seen := map[string]bool{}
	for _, m := range macKeys {
		if len(m.Key) != KeySize {
			return nil, fmt.Errorf("hmac key %q must be %d bytes, got %d", m.ID, KeySize, len(m.Key))
		}
		if len(m.ID) > maxMACKeyID || strings.ContainsAny(m.ID, ":,\n ") {
			return nil, fmt.Errorf("hmac key id %q must be at most %d characters without ':', ',' or spaces", m.ID, maxMACKeyID)
		}
		if seen[m.ID] {
			return nil, fmt.Errorf("hmac key id %q appears twice (a key without id counts as the id \"\")", m.ID)
		}
		seen[m.ID] = true
	}
	if len(encKeys) == 0 {
		return nil, errors.New("at least one encryption key is needed")
	}
	if random == nil {
		random = rand.Reader
	}
	k := &Keyring{macs: macKeys, current: encKeys[0].ID, aeads: map[string]cipher.AEAD{}, rand: random}
	for _, key := range encKeys {
		if key.ID == "" || len(key.ID) > 255 || strings.ContainsAny(key.ID, ":,\n ") {
			return nil, fmt.Errorf("encryption key id %q must be 1-255 characters without ':', ',' or spaces", key.ID)
		}
		if len(key.Key) != KeySize {
			return nil, fmt.Errorf("encryption key %q must be %d bytes, got %d", key.ID, KeySize, len(key.Key))
		}
		if _, dup := k.aeads[key.ID]; dup {
			return nil, fmt.Errorf("encryption key id %q appears twice", key.ID)
		}
		block, err := aes.NewCipher(key.Key)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[key.ID] = aead
	}
	return k, nil
}

// maxMACKeyID keeps the id every stored hash carries short.
const maxMACKeyID = 32

// mac is HMAC-SHA256 over parts under key. Each part is length-prefixed,
// so ("ab","c") and ("a","bc") never hash alike.
func mac(key []byte, parts []string) []byte {
	m := hmac.New(sha256.New, key)
	var n [8]byte
	for _, p := range parts {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		m.Write(n[:])
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

// tagged is a hash as it is stored: the key's id length (1 byte), the id
// and the MAC. A key without id stores the bare 32-byte MAC, as every
// value made before keys had ids; the lengths tell the two forms apart
// (a tagged hash is at least 34 bytes).
func tagged(m Key, parts []string) []byte {
	sum := mac(m.Key, parts)
	if m.ID == "" {
		return sum
	}
	out := make([]byte, 0, 1+len(m.ID)+len(sum))
	out = append(out, byte(len(m.ID)))
	out = append(out, m.ID...)
	return append(out, sum...)
}

// Hash returns the keyed hash of parts to store, made with the newest HMAC
// key and naming it, so a later key can still check it (Check) or find it
// (Hashes).
func (k *Keyring) Hash(parts ...string) []byte { return tagged(k.macs[0], parts) }

// Hashes returns the hash of parts under each HMAC key, newest first: the
// values to look a stored hash up by, whichever key made it.
func (k *Keyring) Hashes(parts ...string) [][]byte {
	out := make([][]byte, len(k.macs))
	for i, m := range k.macs {
		out[i] = tagged(m, parts)
	}
	return out
}

// Check reports, in constant time, whether stored is the hash of parts
// under the HMAC key it names. A hash made with a key no longer
// configured never matches.
func (k *Keyring) Check(stored []byte, parts ...string) bool {
	id := ""
	if len(stored) != sha256.Size {
		if len(stored) < 1 || len(stored) != 1+int(stored[0])+sha256.Size {
			return false
		}
		id = string(stored[1 : 1+int(stored[0])])
	}
	for _, m := range k.macs {
		if m.ID == id {
			return Equal(tagged(m, parts), stored)
		}
	}
	return false
}

// MAC returns the bare HMAC of parts under the newest HMAC key, for names
// derived from secrets (limit counters) that are never checked later:
// they change when the newest key does.
func (k *Keyring) MAC(parts ...string) []byte { return mac(k.macs[0].Key, parts) }

// MACKeyID is the id of the HMAC key new hashes are made with ("" for a
// key without id).
func (k *Keyring) MACKeyID() string { return k.macs[0].ID }

// Equal compares two hashes in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// Seal encrypts plain with the current key. ad (associated data) binds the
// ciphertext to its row, so it cannot be moved to another one.
// The result is: id length (1 byte), id, nonce, ciphertext.
func (k *Keyring) Seal(plain, ad []byte) ([]byte, error) {
	aead := k.aeads[k.current]
	nonce := make([]byte, aead.NonceSize())
	if _, err := io.ReadFull(k.rand, nonce); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	out := make([]byte, 0, 1+len(k.current)+len(nonce)+len(plain)+aead.Overhead())
	out = append(out, byte(len(k.current)))
	out = append(out, k.current...)
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, ad), nil
}

// Open decrypts what Seal produced, with whichever key sealed it.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	if len(sealed) < 1 || len(sealed) < 1+int(sealed[0]) {
		return nil, errors.New("sealed value is truncated")
	}
	id := string(sealed[1 : 1+int(sealed[0])])
	aead, ok := k.aeads[id]
	if !ok {
		return nil, fmt.Errorf("sealed with unknown key %q", id)
	}
	rest := sealed[1+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, errors.New("sealed value is truncated")
	}
	return aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], ad)
}

// CurrentKeyID is the id of the key Seal uses.
func (k *Keyring) CurrentKeyID() string { return k.current }

// ParseKeys reads encryption keys written as "id:base64,id:base64" (or one
// per line); the first is the current one.
func ParseKeys(s string) ([]Key, error) {
	var keys []Key
	for _, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		id, b64, ok := strings.Cut(field, ":")
		if !ok {
			// Name the position, not the field: it would be the key itself.
			return nil, fmt.Errorf("key %d: want id:base64", len(keys)+1)
		}
		raw, err := ParseKey(b64)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		keys = append(keys, Key{ID: id, Key: raw})
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys given")
	}
	return keys, nil
}

// ParseMACKeys reads HMAC keys written as "id:base64,id:base64" (or one per
// line), newest first. One of them may be a bare base64 key without id:
// the key configured before HMAC keys had ids, whose hashes stay
// readable.
func ParseMACKeys(s string) ([]Key, error) {
	var keys []Key
	bare := false
	for _, field := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		id, b64, ok := strings.Cut(field, ":")
		if !ok {
			if bare {
				return nil, errors.New("only one key may be without id: give the others an id (id:base64)")
			}
			bare, id, b64 = true, "", field
		} else if id == "" || len(id) > maxMACKeyID || strings.ContainsAny(id, " \t") {
			return nil, fmt.Errorf("key %d: the id must be 1-%d characters without spaces", len(keys)+1, maxMACKeyID)
		}
		raw, err := ParseKey(b64)
		if err != nil {
			if id == "" {
				return nil, fmt.Errorf("key %d: %w", len(keys)+1, err)
			}
			return nil, fmt.Errorf("key %q: %w", id, err)
		}
		keys = append(keys, Key{ID: id, Key: raw})
	}
	if len(keys) == 0 {
		return nil, errors.New("no keys given")
	}
	for i := range keys {
		for j := range i {
			if keys[i].ID == keys[j].ID {
				return nil, fmt.Errorf("key id %q appears twice", keys[i].ID)
			}
		}
	}
	return keys, nil
}

// ParseKey decodes one base64 (standard or URL, padded or not) 32-byte key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err := enc.DecodeString(s); err == nil {
			if len(raw) != KeySize {
				return nil, fmt.Errorf("key must be %d bytes, got %d", KeySize, len(raw))
			}
			if err := CheckRandom(raw); err != nil {
				return nil, err
			}
			return raw, nil
		}
	}
	return nil, errors.New("key is not valid base64")
}

// CheckRandom refuses a key that cannot have come from a random source:
// one with fewer than 8 distinct byte values, such as a placeholder of
// one repeated byte (AAAA…). 32 random bytes have about 30 distinct
// values; fewer than 8 happens by chance essentially never.
func CheckRandom(key []byte) error {
	var seen [256]bool
	distinct := 0
	for _, b := range key {
		if !seen[b] {
			seen[b] = true
			distinct++
		}
	}
	if distinct < 8 {
		return fmt.Errorf("key is not random (%d distinct bytes): make one with openssl rand -base64 32", distinct)
	}
	return nil
}

// NewKey returns a fresh random key, base64-encoded.
func NewKey() string {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.StdEncoding.EncodeToString(b)
}
