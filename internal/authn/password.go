package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// argon2id parameters (OWASP's second recommended set: 19 MiB, 2 passes).
// They are stored in every hash, so they can be raised later without
// invalidating existing passwords.
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
	saltLen      = 16
	// MinPasswordLen is the shortest password accepted.
	MinPasswordLen = 12
	maxPasswordLen = 1024
)

// ErrWeakPassword is returned by CheckPassword; its message says why.
var ErrWeakPassword = errors.New("weak password")

// CheckPassword enforces the password policy: at least 12 characters, not
// the username, not one repeated character, not a well-known
// password.
func CheckPassword(username, password string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case password == "":
		return fmt.Errorf("%w: the password is empty", ErrWeakPassword)
	case !utf8.ValidString(password):
		return fmt.Errorf("%w: the password is not valid UTF-8", ErrWeakPassword)
	case n < MinPasswordLen:
		return fmt.Errorf("%w: the password has %d characters; at least %d are required", ErrWeakPassword, n, MinPasswordLen)
	case len(password) > maxPasswordLen:
		return fmt.Errorf("%w: the password is longer than %d bytes", ErrWeakPassword, maxPasswordLen)
	case username != "" && strings.EqualFold(strings.TrimSpace(password), username):
		return fmt.Errorf("%w: the password is the username", ErrWeakPassword)
	case strings.Count(password, password[:1]) == len(password):
		return fmt.Errorf("%w: the password repeats one character", ErrWeakPassword)
	}
	lower := strings.ToLower(password)
	for _, common := range commonPasswords {
		if rest := strings.Replace(lower, common, "", 1); rest != lower && (len(rest) < 6 || strings.Trim(rest, "0123456789!.-_ ") == "") {
			return fmt.Errorf("%w: the password is a well-known password with little added", ErrWeakPassword)
		}
	}
	return nil
}

// commonPasswords are refused when they make up almost all of a password.
var commonPasswords = []string{
	"password", "123456789012", "qwertyuiop", "1q2w3e4r5t", "letmein", "iloveyou",
	"admin", "welcome", "abc123", "passw0rd", "changeme", "trustno1",
}

// HashPassword returns an argon2id hash in PHC string format.
func HashPassword(password string) (string, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches hash, in constant time.
// A malformed hash never matches.
func VerifyPassword(hash, password string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var version int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	if m == 0 || m > 1<<20 || t == 0 || t > 10 || p == 0 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 || len(want) > 64 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// dummyHash is verified against when a user does not exist, so that the
// time a login takes does not tell whether the username is known.
var dummyHash = func() string {
	h, err := HashPassword("ward-dummy-password-for-timing")
	if err != nil {
		panic(err)
	}
	return h
}()
