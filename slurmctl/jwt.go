package slurmctl

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Minter signs short-lived Slurm JWTs for any user with the cluster's HS256
// key, so the gateway acts as each researcher without being root and without
// `--uid`. The token is byte-compatible with `scontrol token username=…`:
// slurmctld and slurmdbd accept it because they hold the same key
// (AuthAltParameters=jwt_key=…).
type Minter struct {
	key []byte
	ttl time.Duration
	now func() time.Time

	mu     sync.Mutex
	tokens map[string]token // Token's cache, by user
}

type token struct {
	s   string
	exp time.Time
}

// DefaultTokenTTL keeps a leaked token useless within minutes while outliving
// any single request, including a slow sacctmgr run.
const DefaultTokenTTL = 5 * time.Minute

// NewMinter returns a Minter for key. A ttl of zero means [DefaultTokenTTL].
func NewMinter(key []byte, ttl time.Duration) (*Minter, error) {
	if len(key) < 16 {
		return nil, errors.New("slurm JWT key: want at least 16 bytes (slurmctld's jwt_key file)")
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	return &Minter{key: key, ttl: ttl, now: time.Now}, nil
}

// ReadJWTKey reads the key file that slurm.conf's AuthAltParameters names.
func ReadJWTKey(path string) ([]byte, error) {
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("slurm JWT key: %w", err)
	}
	return key, nil
}

// maxCachedTokens bounds Token's cache; past it the cache starts afresh.
const maxCachedTokens = 4096

// Token returns a token for user with at least half the Minter's TTL left:
// a cached one while it has, a fresh one after. A create's submit signs no
// token of its own (signing costs as much as the rest of the request's
// encoding), and no token handed out expires within a request: the TTL
// already outlives any. The CLI fallback mints per command (see Mint):
// a command may run long.
func (m *Minter) Token(user string) (string, error) {
	now := m.now()
	m.mu.Lock()
	t, ok := m.tokens[user]
	m.mu.Unlock()
	if ok && t.exp.Sub(now) >= m.ttl/2 {
		return t.s, nil
	}
	s, err := m.Mint(user)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	if m.tokens == nil || len(m.tokens) >= maxCachedTokens {
		m.tokens = map[string]token{}
	}
	m.tokens[user] = token{s, now.Add(m.ttl)}
	m.mu.Unlock()
	return s, nil
}

// Mint returns a token for user, valid from now for the Minter's TTL.
func (m *Minter) Mint(user string) (string, error) {
	if user == "" {
		return "", errors.New("slurm JWT: empty user name")
	}
	now := m.now()
	claims := jwt.MapClaims{
		"iat": now.Unix(),
		"exp": now.Add(m.ttl).Unix(),
		// "sun" (Slurm user name) is the claim slurmctld maps to a uid.
		"sun": user,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(m.key)
}
