package password

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
)

// rfc7914 is the scrypt test vector of RFC 7914, section 12:
// scrypt("password", "NaCl", N=1024, r=8, p=16, dkLen=64).
const rfc7914 = "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"

func rfc7914PHC(t *testing.T) string {
	key, err := hex.DecodeString(rfc7914)
	if err != nil {
		t.Fatal(err)
	}
	return "$scrypt$ln=10,r=8,p=16$" + base64.RawStdEncoding.EncodeToString([]byte("NaCl")) + "$" + base64.RawStdEncoding.EncodeToString(key)
}

// TestImportedHashes checks each foreign scheme against vectors published
// with its reference implementation: the right password verifies, a wrong
// one does not, and every one needs a rehash to argon2id afterwards.
func TestImportedHashes(t *testing.T) {
	firebase, err := FirebaseScrypt(
		// The example in github.com/firebase/scrypt's README: a user's
		// exported passwordHash and salt, and the project's parameters.
		"lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==", "42xEC+ixf3L2lw==",
		"Bw==", "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==", 8, 14)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		scheme, pw, encoded string
	}{
		// jBCrypt's test vectors (Damien Miller's Java port of OpenBSD
		// bcrypt, TestBCrypt.java), which x/crypto/bcrypt's tests share.
		{"bcrypt", "abc", "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i"},
		{"bcrypt", "abcdefghijklmnopqrstuvwxyz", "$2a$06$.rCVZVOThsIa97pEDOxvGuRRgzG64bvtJ0938xuqzv18d3ZpQhstC"},
		// phc-winner-argon2, src/test.c (version 0x13, m=256 KiB).
		{"argon2i", "password", "$argon2i$v=19$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8"},
		{"argon2id", "password", "$argon2id$v=19$m=256,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4"},
		// Django 1.5's tests/auth_tests/test_hashers.py, test_pbkdf2.
		{"pbkdf2", "lètmein", "pbkdf2_sha256$10000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY="},
		// passlib's test_handlers_pbkdf2.py, pbkdf2_sha512_test.
		{"pbkdf2", "password", "$pbkdf2-sha512$1212$RHY0Fr3IDMSVO/RSZyb5ow$eNLfBK.eVozomMr.1gYa17k9B7KIK25NOEshvhrSX.esqY3s.FvWZViXz4KoLlQI.BzY/YTNJOiKc5gBYFYGww"},
		{"scrypt", "password", rfc7914PHC(t)},
		{"firebase-scrypt", "user1password", firebase},
	}
	h := NewHasher(cheap, 2)
	ctx := context.Background()
	for _, c := range cases {
		scheme, err := CheckImported(c.encoded)
		if err != nil || scheme != c.scheme {
			t.Errorf("%s: CheckImported = %q, %v", c.encoded[:16], scheme, err)
			continue
		}
		if ok, err := h.Verify(ctx, c.pw, c.encoded); !ok || err != nil {
			t.Errorf("%s: the right password is refused: %v", c.scheme, err)
		}
		if ok, err := h.Verify(ctx, c.pw+"x", c.encoded); ok || err != nil {
			t.Errorf("%s: a wrong password is accepted (%v)", c.scheme, err)
		}
		if !h.NeedsRehash(c.encoded) {
			t.Errorf("%s: no rehash asked for", c.scheme)
		}
	}
}

// TestPBKDF2Formats: the same derived key reads in Kratos's and passlib's
// spelling, with SHA-256 and SHA-512.
func TestPBKDF2Formats(t *testing.T) {
	// Django's vector, re-spelt: its salt is the text "seasalt".
	salt := base64.RawStdEncoding.EncodeToString([]byte("seasalt"))
	kratos := "$pbkdf2-sha256$i=10000,l=32$" + salt + "$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY"
	passlib := "$pbkdf2-sha256$10000$" + salt + "$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY"
	h := NewHasher(cheap, 1)
	for _, enc := range []string{kratos, passlib} {
		if ok, err := h.Verify(context.Background(), "lètmein", enc); !ok || err != nil {
			t.Errorf("%s: refused: %v", enc, err)
		}
	}
}

// TestImportedHashBounds: hashes whose cost would let one login take the
// server down, or that are not hashes at all, are refused at import, and
// the error does not quote them.
func TestImportedHashBounds(t *testing.T) {
	for _, enc := range []string{
		"$2a$31$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i",
		"$argon2id$v=19$m=4194304,t=2,p=1$c29tZXNhbHQ$nf65EOgLrQMR/uIPnA4rEsF5h7TKyQwu9U1bMCHGi/4",
		"$argon2i$v=16$m=256,t=2,p=1$c29tZXNhbHQ$iekCn0Y3spW+sCcFanM2xBT63UP2sghkUoHLIUpWRS8",
		"pbkdf2_sha256$1000000000$seasalt$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY=",
		"$scrypt$ln=24,r=8,p=1$TmFDbA$CWWFdHOWwPnki7HvkcqN9iA2T3KLW1cf2uZ5kvArtVY",
		"$scrypt$ln=10,r=8,p=1$TmFDbA$c2hvcnQ",
		"md5$abc$def",
		"hunter2",
		"",
	} {
		_, err := CheckImported(enc)
		if err == nil {
			t.Errorf("%q accepted", enc)
			continue
		}
		if enc != "" && strings.Contains(err.Error(), enc) {
			t.Errorf("the error quotes the hash: %v", err)
		}
	}
}
