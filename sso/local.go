package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Local accounts are for the bootstrap superadmin and break-glass admins:
// their passwords live in Slurmgate's database as argon2id hashes (PHC
// string format), so the gateway works before any directory is wired up.

// PasswordStore holds local password hashes; the bridge implements it.
type PasswordStore interface {
	// LocalPasswordHash returns the hash set for a user, and ErrNoLocalPassword
	// when the user has none (or does not exist).
	LocalPasswordHash(ctx context.Context, username string) (hash string, uid int, err error)
}

// ErrNoLocalPassword is what a PasswordStore returns for a user without a
// local password; the login then falls through to LDAP.
var ErrNoLocalPassword = errors.New("no local password")

// argon2id parameters: RFC 9106's second recommended option (64 MiB, 3
// passes). A login costs ~100 ms of one core, which also bounds guessing.
const (
	argonTime    = 3
	argonMemory  = 64 * 1024
	argonThreads = 2
	argonKeyLen  = 32
)

// HashPassword returns password's argon2id hash as a PHC string:
// $argon2id$v=19$m=65536,t=3,p=2$<salt>$<hash>.
func HashPassword(password string) (string, error) {
	if len(password) < 12 {
		return "", fmt.Errorf("a local password needs at least 12 characters, not %d", len(password))
	}
	salt := make([]byte, 16)
	rand.Read(salt)
	key := argon2.IDKey([]byte(password), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, argonMemory, argonTime, argonThreads,
		enc.EncodeToString(salt), enc.EncodeToString(key)), nil
}

// CheckPassword reports whether password matches a hash from HashPassword;
// an error means the hash itself is malformed.
func CheckPassword(hash, password string) (bool, error) {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("not an argon2id PHC string")
	}
	var version int
	var m uint32
	var t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[2], "v=%d", &version); err != nil || version != argon2.Version {
		return false, fmt.Errorf("argon2 version %q: want v=%d", parts[2], argon2.Version)
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || t == 0 || p == 0 {
		return false, fmt.Errorf("argon2 parameters %q", parts[3])
	}
	enc := base64.RawStdEncoding
	salt, err := enc.DecodeString(parts[4])
	if err != nil {
		return false, fmt.Errorf("argon2 salt: %w", err)
	}
	want, err := enc.DecodeString(parts[5])
	if err != nil || len(want) == 0 {
		return false, fmt.Errorf("argon2 hash: %v", err)
	}
	got := argon2.IDKey([]byte(password), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

// dummyHash is checked against when a user has no local password, so that
// a login for an unknown name costs what a real one does. Made on first
// use: an argon2id hash costs 64 MiB, which no importer should pay at init.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("not a password, only a timing pad")
	return h
})

// Local authenticates local accounts.
type Local struct{ store PasswordStore }

// NewLocal returns the local-account authenticator over store.
func NewLocal(store PasswordStore) *Local { return &Local{store: store} }

// Authenticate checks a local password. A user without one is refused
// with ErrNoLocalPassword in the error chain.
func (l *Local) Authenticate(ctx context.Context, username, password string) (Identity, error) {
	return l.authenticate(ctx, username, password, true)
}

// authenticate pads the time of a refusal for a user without a local
// password only when asked: when LDAP is tried next, its round trips
// differ anyway, and every LDAP login would pay an argon2id hash.
func (l *Local) authenticate(ctx context.Context, username, password string, pad bool) (Identity, error) {
	hash, uid, err := l.store.LocalPasswordHash(ctx, username)
	if errors.Is(err, ErrNoLocalPassword) {
		if pad {
			CheckPassword(dummyHash(), password)
		}
		return Identity{}, badCredentials(fmt.Errorf("%s: %w", username, ErrNoLocalPassword))
	} else if err != nil {
		return Identity{}, refuse(Unavailable, err, "local accounts cannot be read")
	}
	ok, err := CheckPassword(hash, password)
	if err != nil {
		return Identity{}, refuse(Unavailable, err, "the local password of %s is stored in a form this gateway cannot check; an administrator must set it again", username)
	}
	if !ok {
		return Identity{}, badCredentials(fmt.Errorf("local password of %s does not match", username))
	}
	return Identity{Source: "local", Subject: username, Username: username, UID: uid}, nil
}
