package password

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"math/bits"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/scrypt"
)

// Imported users keep the hash their old system made until their first
// login, when the password is at hand and is hashed again with argon2id
// (Hasher.NeedsRehash is true for every foreign scheme). The encodings
// understood, each as its own tools write it:
//
//	bcrypt           $2a$ / $2b$ / $2y$ (Modular Crypt Format)
//	argon2id/argon2i $argon2id$v=19$m=...,t=...,p=...$salt$hash (PHC string)
//	PBKDF2           pbkdf2_sha256$iterations$salt$hash (Django)
//	                 $pbkdf2-sha256$iterations$salt$hash, $pbkdf2-sha512$... (passlib, "ab64")
//	                 $pbkdf2-sha256$i=iterations,l=length$salt$hash (Ory Kratos)
//	scrypt           $scrypt$ln=log2(N),r=...,p=...$salt$hash (passlib PHC; Kratos's ln=N too)
//	Firebase scrypt  $firescrypt$ln=memCost,r=rounds,p=1$salt$hash$saltSeparator$signerKey
//
// Base64 fields take the standard alphabet, with or without padding
// ('.' for '+' as passlib writes them).

// Bounds on imported parameters: a hash is checked at every login until
// it is replaced, so one whose cost is absurd would let a single login
// take the server's memory or minutes of CPU.
const (
	maxLegacyMemoryKiB = 256 * 1024 // argon2 and scrypt
	maxPBKDF2Rounds    = 10_000_000
	maxBcryptCost      = 16
	maxArgon2Time      = 64
	minLegacyKeyLen    = 16
	maxLegacyKeyLen    = 128
)

// legacy is a parsed foreign hash: verify recomputes it from a password.
type legacy struct {
	scheme string
	memory uint64 // KiB one verification takes (argon2, scrypt); 0: little
	verify func(pw string) (bool, error)
}

// CheckImported reports whether encoded is a hash Tessera can verify (an
// argon2id one too), with parameters within bounds. It names the scheme; the error never quotes the hash.
func CheckImported(encoded string) (string, error) {
	l, err := parseLegacy(encoded)
	if err != nil {
		return "", err
	}
	return l.scheme, nil
}

func parseLegacy(encoded string) (*legacy, error) {
	switch {
	case strings.HasPrefix(encoded, "$2a$"), strings.HasPrefix(encoded, "$2b$"), strings.HasPrefix(encoded, "$2y$"):
		return parseBcrypt(encoded)
	case strings.HasPrefix(encoded, "$argon2id$"), strings.HasPrefix(encoded, "$argon2i$"):
		return parseArgon2(encoded)
	case strings.HasPrefix(encoded, "pbkdf2_sha256$"):
		return parseDjangoPBKDF2(encoded)
	case strings.HasPrefix(encoded, "$pbkdf2-sha256$"), strings.HasPrefix(encoded, "$pbkdf2-sha512$"):
		return parsePHCPBKDF2(encoded)
	case strings.HasPrefix(encoded, "$scrypt$"):
		return parseScrypt(encoded)
	case strings.HasPrefix(encoded, "$firescrypt$"):
		return parseFirebaseScrypt(encoded)
	}
	return nil, errors.New("unknown hash format: expected bcrypt, argon2id, argon2i, PBKDF2 (Django, passlib or Kratos), scrypt or Firebase scrypt")
}

// b64 decodes a base64 field in any of the spellings the formats use.
func b64(field string) ([]byte, error) {
	s := strings.TrimRight(strings.ReplaceAll(field, ".", "+"), "=")
	return base64.RawStdEncoding.DecodeString(s)
}

func checkKey(key []byte) error {
	if len(key) < minLegacyKeyLen || len(key) > maxLegacyKeyLen {
		return fmt.Errorf("hash must be %d to %d bytes", minLegacyKeyLen, maxLegacyKeyLen)
	}
	return nil
}

func equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

func parseBcrypt(encoded string) (*legacy, error) {
	cost, err := bcrypt.Cost([]byte(encoded))
	if err != nil {
		return nil, errors.New("malformed bcrypt hash")
	}
	if cost > maxBcryptCost {
		return nil, fmt.Errorf("bcrypt cost %d is over %d", cost, maxBcryptCost)
	}
	return &legacy{scheme: "bcrypt", verify: func(pw string) (bool, error) {
		err := bcrypt.CompareHashAndPassword([]byte(encoded), []byte(pw))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) || errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return false, nil
		}
		return err == nil, err
	}}, nil
}

// parseArgon2 reads argon2i and argon2id PHC strings of any key length
// (Tessera's own argon2id goes through parse, which fixes the length).
func parseArgon2(encoded string) (*legacy, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 {
		return nil, errors.New("malformed argon2 hash")
	}
	if parts[2] != "v=19" {
		return nil, errors.New("only argon2 version 19 (0x13) is supported")
	}
	var m, t, p uint32
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || m == 0 || t == 0 || p == 0 || p > 255 {
		return nil, errors.New("bad argon2 parameters")
	}
	if m > maxLegacyMemoryKiB || t > maxArgon2Time {
		return nil, fmt.Errorf("argon2 cost over the limit (m at most %d, t at most %d)", maxLegacyMemoryKiB, maxArgon2Time)
	}
	salt, err1 := b64(parts[4])
	want, err2 := b64(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 {
		return nil, errors.New("bad argon2 encoding")
	}
	if err := checkKey(want); err != nil {
		return nil, err
	}
	derive := argon2.IDKey
	if parts[1] == "argon2i" {
		derive = argon2.Key
	}
	return &legacy{scheme: parts[1], memory: uint64(m), verify: func(pw string) (bool, error) {
		return equal(derive([]byte(pw), salt, t, m, uint8(p), uint32(len(want))), want), nil
	}}, nil
}

func pbkdf2Legacy(h func() hash.Hash, rounds int, salt, want []byte) (*legacy, error) {
	if rounds < 1 || rounds > maxPBKDF2Rounds {
		return nil, fmt.Errorf("PBKDF2 iterations must be 1 to %d", maxPBKDF2Rounds)
	}
	if err := checkKey(want); err != nil {
		return nil, err
	}
	return &legacy{scheme: "pbkdf2", verify: func(pw string) (bool, error) {
		got, err := pbkdf2.Key(h, pw, salt, rounds, len(want))
		return err == nil && equal(got, want), err
	}}, nil
}

// parseDjangoPBKDF2 reads Django's pbkdf2_sha256$iterations$salt$hash:
// the salt is used as the text it is, the hash is padded base64.
func parseDjangoPBKDF2(encoded string) (*legacy, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 4 {
		return nil, errors.New("malformed Django PBKDF2 hash")
	}
	rounds, err := strconv.Atoi(parts[1])
	if err != nil {
		return nil, errors.New("bad Django PBKDF2 iterations")
	}
	want, err := b64(parts[3])
	if err != nil || parts[2] == "" {
		return nil, errors.New("bad Django PBKDF2 encoding")
	}
	return pbkdf2Legacy(sha256.New, rounds, []byte(parts[2]), want)
}

// parsePHCPBKDF2 reads $pbkdf2-sha256$ and $pbkdf2-sha512$ hashes as
// passlib ("$rounds$") and Ory Kratos ("$i=rounds,l=length$") write them.
func parsePHCPBKDF2(encoded string) (*legacy, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 {
		return nil, errors.New("malformed PBKDF2 hash")
	}
	h := sha256.New
	if parts[1] == "pbkdf2-sha512" {
		h = sha512.New
	}
	params := parts[2]
	if strings.HasPrefix(params, "i=") {
		params, _, _ = strings.Cut(strings.TrimPrefix(params, "i="), ",") // l= is the hash's own length
	}
	rounds, err := strconv.Atoi(params)
	if err != nil {
		return nil, errors.New("bad PBKDF2 iterations")
	}
	salt, err1 := b64(parts[3])
	want, err2 := b64(parts[4])
	if err1 != nil || err2 != nil || len(salt) == 0 {
		return nil, errors.New("bad PBKDF2 encoding")
	}
	return pbkdf2Legacy(h, rounds, salt, want)
}

// scryptParams reads "ln=..,r=..,p=..". ln is log2(N) as in passlib;
// a power of two above 31 can only be N itself, as Ory Kratos writes it.
func scryptParams(field string) (n, r, p int, err error) {
	var ln int
	if _, err := fmt.Sscanf(field, "ln=%d,r=%d,p=%d", &ln, &r, &p); err != nil || ln < 1 || r < 1 || p < 1 {
		return 0, 0, 0, errors.New("bad scrypt parameters")
	}
	switch {
	case ln <= 31:
		n = 1 << ln
	case bits.OnesCount(uint(ln)) == 1:
		n = ln
	default:
		return 0, 0, 0, errors.New("bad scrypt parameters: ln must be log2(N)")
	}
	if uint64(128)*uint64(n)*uint64(r)*uint64(p) > maxLegacyMemoryKiB*1024 || r*p >= 1<<30 {
		return 0, 0, 0, fmt.Errorf("scrypt cost over the limit (%d MiB)", maxLegacyMemoryKiB/1024)
	}
	return n, r, p, nil
}

// scryptMemory is what scrypt with n, r, p takes, in KiB: its table of n
// blocks and its p lanes, 128·r bytes each.
func scryptMemory(n, r, p int) uint64 { return 128 * uint64(r) * (uint64(n) + uint64(p)) / 1024 }

func parseScrypt(encoded string) (*legacy, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 5 {
		return nil, errors.New("malformed scrypt hash")
	}
	n, r, p, err := scryptParams(parts[2])
	if err != nil {
		return nil, err
	}
	salt, err1 := b64(parts[3])
	want, err2 := b64(parts[4])
	if err1 != nil || err2 != nil || len(salt) == 0 {
		return nil, errors.New("bad scrypt encoding")
	}
	if err := checkKey(want); err != nil {
		return nil, err
	}
	return &legacy{scheme: "scrypt", memory: scryptMemory(n, r, p), verify: func(pw string) (bool, error) {
		got, err := scrypt.Key([]byte(pw), salt, n, r, p, len(want))
		return err == nil && equal(got, want), err
	}}, nil
}

// FirebaseScrypt encodes a hash exported from Firebase Authentication
// (its base64 passwordHash and salt) with the project's hash parameters,
// as the string Tessera stores and verifies.
func FirebaseScrypt(hash, salt, saltSeparator, signerKey string, rounds, memCost int) (string, error) {
	enc := fmt.Sprintf("$firescrypt$ln=%d,r=%d,p=1$%s$%s$%s$%s", memCost, rounds, salt, hash, saltSeparator, signerKey)
	if _, err := parseFirebaseScrypt(enc); err != nil {
		return "", err
	}
	return enc, nil
}

// parseFirebaseScrypt reads the Firebase variant (github.com/firebase/scrypt):
// scrypt of the password with salt+saltSeparator (N = 2^memCost, r =
// rounds, p = 1) gives a 32-byte key, which AES-256-CTR-encrypts the
// project's signer key under an all-zero IV; the result is the hash.
func parseFirebaseScrypt(encoded string) (*legacy, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 7 {
		return nil, errors.New("malformed Firebase scrypt hash")
	}
	n, r, p, err := scryptParams(parts[2])
	if err != nil {
		return nil, err
	}
	salt, err1 := b64(parts[3])
	want, err2 := b64(parts[4])
	sep, err3 := b64(parts[5])
	signer, err4 := b64(parts[6])
	if err := errors.Join(err1, err2, err3, err4); err != nil || len(salt) == 0 || len(signer) == 0 {
		return nil, errors.New("bad Firebase scrypt encoding: salt, hash, salt separator and signer key must be base64")
	}
	if err := checkKey(want); err != nil {
		return nil, err
	}
	return &legacy{scheme: "firebase-scrypt", memory: scryptMemory(n, r, p), verify: func(pw string) (bool, error) {
		key, err := scrypt.Key([]byte(pw), append(append([]byte{}, salt...), sep...), n, r, p, 32)
		if err != nil {
			return false, err
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return false, err
		}
		got := make([]byte, len(signer))
		cipher.NewCTR(block, make([]byte, aes.BlockSize)).XORKeyStream(got, signer)
		return equal(got, want), nil
	}}, nil
}
