package bridge

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	mathrand "math/rand/v2"
	"net/mail"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Credentials: keypairs for programs and the CLI (the API verifies their
// HMAC request signatures, so it needs each secret itself and keeps it
// encrypted under Config.SecretKey), short-lived bearer tokens (only their
// SHA-256 is stored), and the one-use record of signatures that makes a
// signed request impossible to replay.

// Keypair is an access key and what is known about it; its secret is shown
// only by CreateKeypair.
type Keypair struct {
	AccessKey   string     `json:"access_key"`
	UserID      int64      `json:"user_id"`
	Username    string     `json:"username"`
	Description string     `json:"description"`
	CreatedAt   time.Time  `json:"created_at"`
	LastUsedAt  *time.Time `json:"last_used_at,omitempty"`
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
}

// KeypairCursor is a keypair's position in the newest-first order of
// ListKeypairs.
type KeypairCursor struct {
	CreatedAt time.Time
	AccessKey string
}

const (
	accessKeyPrefix = "SGAK"
	tokenPrefix     = "sgt_"
	// MaxTokenTTL bounds bearer tokens: no API revokes a single token, so a
	// leaked one must die soon on its own.
	MaxTokenTTL = 24 * time.Hour
	// purgeOneIn spreads the purge of old signatures over calls: one call in
	// this many deletes what has aged out, so the table stays small without
	// a DELETE on every request.
	purgeOneIn = 64
)

// randomText returns n random bytes in enc's alphabet.
func randomText(enc interface{ EncodeToString([]byte) string }, n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return enc.EncodeToString(b)
}

// newAccessKey is "SGAK" and 16 upper-case base32 characters (80 random bits):
// recognisable in logs and configuration, and never mistaken for a secret.
func newAccessKey() string {
	return accessKeyPrefix + randomText(base32.StdEncoding.WithPadding(base32.NoPadding), 10)
}

// newSecret is 40 base64url characters (240 random bits).
func newSecret() string { return randomText(base64.RawURLEncoding, 30) }

// secretCipher is AES-256-GCM under Config.SecretKey.
func (b *Bridge) secretCipher() (cipher.AEAD, error) {
	if len(b.cfg.SecretKey) != 32 {
		return nil, fmt.Errorf("the keypair encryption key (Config.SecretKey) must be 32 bytes, not %d", len(b.cfg.SecretKey))
	}
	block, err := aes.NewCipher(b.cfg.SecretKey)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// sealSecret encrypts a secret with the access key as additional data, so a
// ciphertext copied onto another keypair's row does not decrypt.
func (b *Bridge) sealSecret(accessKey, secret string) ([]byte, error) {
	aead, err := b.secretCipher()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(secret)+aead.Overhead())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, []byte(secret), []byte(accessKey)), nil
}

func (b *Bridge) openSecret(accessKey string, sealed []byte) ([]byte, error) {
	aead, err := b.secretCipher()
	if err != nil {
		return nil, err
	}
	if len(sealed) < aead.NonceSize() {
		return nil, fmt.Errorf("keypair %s: stored secret is truncated", accessKey)
	}
	nonce, ciphertext := sealed[:aead.NonceSize()], sealed[aead.NonceSize():]
	secret, err := aead.Open(nil, nonce, ciphertext, []byte(accessKey))
	if err != nil {
		return nil, fmt.Errorf("keypair %s: stored secret does not decrypt (was Config.SecretKey changed?): %w", accessKey, err)
	}
	return secret, nil
}

// manageCredentials returns the user whose credentials the actor wants to
// manage, if allowed: users manage their own, superadmins anyone's, domain
// admins those of plain users in their domain. A user the actor may not see
// is not found; one they see but may not manage (another admin) is forbidden.
func (b *Bridge) manageCredentials(ctx context.Context, a Actor, userID int64) (User, error) {
	u, err := b.User(ctx, a, userID)
	if err != nil {
		return User{}, err
	}
	if a.UserID != u.ID && !a.isSuperadmin() && u.Role != RoleUser {
		return User{}, forbidden("only superadmins manage the credentials of %s %s", u.Role, u.Username)
	}
	return u, nil
}

// mintCredentials returns the user a new credential (keypair, bearer token)
// would act as, if the actor may mint one: only the user themselves and
// superadmins. A domain admin may list and revoke the credentials of their
// users but not create one: a credential acts as its user, so minting one
// would let the admin run jobs as that person, which their role does not
// grant.
func (b *Bridge) mintCredentials(ctx context.Context, a Actor, userID int64) (User, error) {
	u, err := b.manageCredentials(ctx, a, userID)
	if err != nil {
		return User{}, err
	}
	if a.UserID != u.ID && !a.isSuperadmin() {
		return User{}, forbidden("only %s or a superadmin may create credentials that act as %s; administrators may list and revoke them", u.Username, u.Username)
	}
	return u, nil
}

// CreateKeypair makes a keypair for a user and returns its access key and
// secret. The secret is not retrievable later: the caller shows it once.
// Only the user and superadmins may (mintCredentials).
func (b *Bridge) CreateKeypair(ctx context.Context, a Actor, userID int64, description string) (accessKey, secret string, err error) {
	if len(description) > 200 {
		return "", "", invalid("description", "description is %d characters; at most 200", len(description))
	}
	u, err := b.mintCredentials(ctx, a, userID)
	if err != nil {
		return "", "", err
	}
	return b.insertKeypair(ctx, b.db, u.ID, description)
}

func (b *Bridge) insertKeypair(ctx context.Context, q querier, userID int64, description string) (accessKey, secret string, err error) {
	accessKey, secret = newAccessKey(), newSecret()
	sealed, err := b.sealSecret(accessKey, secret)
	if err != nil {
		return "", "", err
	}
	_, err = q.Exec(ctx, `INSERT INTO keypairs (access_key, user_id, secret_enc, description) VALUES ($1, $2, $3, $4)`,
		accessKey, userID, sealed, description)
	if err != nil {
		return "", "", fmt.Errorf("storing keypair: %w", err)
	}
	return accessKey, secret, nil
}

// ListKeypairs lists a user's keypairs that are not revoked, newest first:
// at most limit (1–500) of them, after the cursor when one is given.
func (b *Bridge) ListKeypairs(ctx context.Context, a Actor, userID int64, after *KeypairCursor, limit int) ([]Keypair, error) {
	if limit < 1 || limit > 500 {
		return nil, invalid("limit", "limit %d: want 1 to 500", limit)
	}
	u, err := b.manageCredentials(ctx, a, userID)
	if err != nil {
		return nil, err
	}
	var afterTime *time.Time
	var afterKey string
	if after != nil {
		afterTime, afterKey = &after.CreatedAt, after.AccessKey
	}
	rows, _ := b.db.Query(ctx, `
		SELECT k.access_key, k.user_id, u.username, k.description, k.created_at, k.last_used_at, k.expires_at
		FROM keypairs k JOIN users u ON u.id = k.user_id
		WHERE k.user_id = $1 AND k.revoked_at IS NULL
		  AND ($2::timestamptz IS NULL OR (k.created_at, k.access_key) < ($2, $3))
		ORDER BY k.created_at DESC, k.access_key DESC
		LIMIT $4`, u.ID, afterTime, afterKey, limit)
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Keypair, error) {
		var k Keypair
		return k, r.Scan(&k.AccessKey, &k.UserID, &k.Username, &k.Description, &k.CreatedAt, &k.LastUsedAt, &k.ExpiresAt)
	})
}

// RevokeKeypair revokes a keypair at once; requests it signs are refused
// from then on. A revoked keypair is no longer found.
func (b *Bridge) RevokeKeypair(ctx context.Context, a Actor, accessKey string) error {
	var owner int64
	err := b.db.QueryRow(ctx, `SELECT user_id FROM keypairs WHERE access_key = $1 AND revoked_at IS NULL`, accessKey).Scan(&owner)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("keypair", accessKey)
	} else if err != nil {
		return err
	}
	if _, err := b.manageCredentials(ctx, a, owner); err != nil {
		if KindOf(err) == KindNotFound {
			return notFound("keypair", accessKey)
		}
		return err
	}
	tag, err := b.db.Exec(ctx, `UPDATE keypairs SET revoked_at = now() WHERE access_key = $1 AND revoked_at IS NULL`, accessKey)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return notFound("keypair", accessKey)
	}
	return nil
}

// credentialOwner is the part of a credential's user that decides whether
// the credential works.
type credentialOwner struct {
	actor        Actor
	status       string
	domain       string
	domainActive bool
}

const credentialOwnerCols = `u.id, u.username, u.role, u.domain_id, u.status, d.name, d.active`

// dest lists scan destinations in the order of credentialOwnerCols.
func (o *credentialOwner) dest() []any {
	return []any{&o.actor.UserID, &o.actor.Username, &o.actor.Role, &o.actor.DomainID, &o.status, &o.domain, &o.domainActive}
}

// check returns the actor, or why their credentials are refused.
func (o *credentialOwner) check() (Actor, error) {
	if o.status != "active" {
		return Actor{}, forbidden("user %s is %s", o.actor.Username, o.status)
	}
	if !o.domainActive {
		return Actor{}, forbidden("domain %s of user %s is inactive", o.domain, o.actor.Username)
	}
	return o.actor, nil
}

// KeypairSecret returns a keypair's secret and the actor it acts as, for
// verifying a request's signature. A keypair that is unknown, revoked or
// expired is not found; one whose user is not active, or whose domain is
// inactive, is forbidden.
func (b *Bridge) KeypairSecret(ctx context.Context, accessKey string) (secret []byte, actor Actor, err error) {
	var sealed []byte
	var revoked, expires *time.Time
	var owner credentialOwner
	err = b.db.QueryRow(ctx, `
		SELECT k.secret_enc, k.revoked_at, k.expires_at, `+credentialOwnerCols+`
		FROM keypairs k JOIN users u ON u.id = k.user_id JOIN domains d ON d.id = u.domain_id
		WHERE k.access_key = $1`, accessKey).Scan(append([]any{&sealed, &revoked, &expires}, owner.dest()...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, Actor{}, &Error{Kind: KindNotFound, Message: fmt.Sprintf("unknown access key %s", accessKey)}
	case err != nil:
		return nil, Actor{}, err
	case revoked != nil:
		return nil, Actor{}, &Error{Kind: KindNotFound, Message: fmt.Sprintf("keypair %s was revoked at %s", accessKey, revoked.UTC().Format(time.RFC3339))}
	case expires != nil && !b.now().Before(*expires):
		return nil, Actor{}, &Error{Kind: KindNotFound, Message: fmt.Sprintf("keypair %s expired at %s", accessKey, expires.UTC().Format(time.RFC3339))}
	}
	if actor, err = owner.check(); err != nil {
		return nil, Actor{}, err
	}
	if secret, err = b.openSecret(accessKey, sealed); err != nil {
		return nil, Actor{}, err
	}
	return secret, actor, nil
}

// KeypairUsed records that a keypair signed a verified request. It writes at
// most once a minute per keypair, so a busy program costs no row churn.
func (b *Bridge) KeypairUsed(ctx context.Context, accessKey string) error {
	_, err := b.db.Exec(ctx, `UPDATE keypairs SET last_used_at = now()
		WHERE access_key = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`, accessKey)
	return err
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// CreateToken mints a bearer token for a user, valid for ttl (at most
// MaxTokenTTL), under the same rules as CreateKeypair. Only the token's
// SHA-256 is stored; the token itself is returned once.
func (b *Bridge) CreateToken(ctx context.Context, a Actor, userID int64, ttl time.Duration) (token string, expiresAt time.Time, err error) {
	if ttl <= 0 || ttl > MaxTokenTTL {
		return "", time.Time{}, invalid("ttl", "token lifetime %v: want more than 0 and at most %v", ttl, MaxTokenTTL)
	}
	u, err := b.mintCredentials(ctx, a, userID)
	if err != nil {
		return "", time.Time{}, err
	}
	token = tokenPrefix + randomText(base64.RawURLEncoding, 32)
	expiresAt = b.now().Add(ttl).Truncate(time.Microsecond) // PostgreSQL's precision
	if _, err := b.db.Exec(ctx, `INSERT INTO api_tokens (user_id, token_hash, expires_at) VALUES ($1, $2, $3)`,
		u.ID, tokenHash(token), expiresAt); err != nil {
		return "", time.Time{}, fmt.Errorf("storing token: %w", err)
	}
	// Expired tokens are useless; dropping them a day late keeps a recent
	// "token expired" answer possible while the table stays small.
	if _, err := b.db.Exec(ctx, `DELETE FROM api_tokens WHERE user_id = $1 AND expires_at < now() - interval '1 day'`, u.ID); err != nil {
		b.log.Warn("purging expired tokens", "user", u.Username, "err", err)
	}
	return token, expiresAt, nil
}

// ActorForToken returns the actor a bearer token acts as, and when the token
// expires. An unknown, revoked or expired token is not found; one whose user
// is not active is forbidden.
func (b *Bridge) ActorForToken(ctx context.Context, token string) (Actor, time.Time, error) {
	if !strings.HasPrefix(token, tokenPrefix) {
		return Actor{}, time.Time{}, &Error{Kind: KindNotFound, Message: "not a Slurmgate token (they begin with " + tokenPrefix + ")"}
	}
	var expires time.Time
	var revoked *time.Time
	var owner credentialOwner
	err := b.db.QueryRow(ctx, `
		SELECT t.expires_at, t.revoked_at, `+credentialOwnerCols+`
		FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN domains d ON d.id = u.domain_id
		WHERE t.token_hash = $1`, tokenHash(token)).Scan(append([]any{&expires, &revoked}, owner.dest()...)...)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return Actor{}, time.Time{}, &Error{Kind: KindNotFound, Message: "unknown token"}
	case err != nil:
		return Actor{}, time.Time{}, err
	case revoked != nil:
		return Actor{}, time.Time{}, &Error{Kind: KindNotFound, Message: "token was revoked at " + revoked.UTC().Format(time.RFC3339)}
	case !b.now().Before(expires):
		return Actor{}, time.Time{}, &Error{Kind: KindNotFound, Message: "token expired at " + expires.UTC().Format(time.RFC3339)}
	}
	a, err := owner.check()
	return a, expires, err
}

// RememberSignature records a verified request signature and reports whether
// it is fresh, that is not seen before. window is how long a signature could
// still be accepted (the API passes twice its clock-skew bound); rows older
// than it are purged now and then.
func (b *Bridge) RememberSignature(ctx context.Context, sig []byte, window time.Duration) (fresh bool, err error) {
	tag, err := b.db.Exec(ctx, `INSERT INTO request_nonces (signature) VALUES ($1) ON CONFLICT DO NOTHING`, sig)
	if err != nil {
		return false, fmt.Errorf("recording request signature: %w", err)
	}
	if mathrand.IntN(purgeOneIn) == 0 {
		if err := b.purgeSignatures(ctx, window); err != nil {
			b.log.Warn("purging old request signatures", "err", err)
		}
	}
	return tag.RowsAffected() == 1, nil
}

// Forwarded signed requests. A replica forwarding a request to the replica
// that holds the session's agent (AgentElsewhere) has checked and
// remembered its signature, so to the receiver the signature is no longer
// fresh: it would refuse the request as a replay. The forwarder therefore
// vouches for the signature with a proof, a MAC under a key derived from
// Config.SecretKey, which every replica has and no client; the receiver
// still checks the signature itself, takes a valid proof in place of
// freshness, and remembers the proof instead, so a forwarded copy too is
// accepted once only.

// ForwardProof vouches that this replica checked the request signed sig.
func (b *Bridge) ForwardProof(sig []byte) []byte {
	m := hmac.New(sha256.New, b.forwardKey())
	m.Write(sig)
	return m.Sum(nil)
}

// CheckForwardProof reports whether proof is a replica's ForwardProof of sig.
func (b *Bridge) CheckForwardProof(sig, proof []byte) bool {
	return len(b.cfg.SecretKey) > 0 && hmac.Equal(proof, b.ForwardProof(sig))
}

func (b *Bridge) forwardKey() []byte {
	m := hmac.New(sha256.New, b.cfg.SecretKey)
	m.Write([]byte("slurmgate: signatures of forwarded requests"))
	return m.Sum(nil)
}

func (b *Bridge) purgeSignatures(ctx context.Context, window time.Duration) error {
	_, err := b.db.Exec(ctx, `DELETE FROM request_nonces WHERE seen_at < now() - $1::interval`, window)
	return err
}

// Bootstrap creates the first superadmin, in domain "default" (created when
// missing), and a keypair for them. It refuses once any superadmin exists,
// so it is safe to leave reachable from the command line.
func (b *Bridge) Bootstrap(ctx context.Context, username string, uid int, email string) (actor Actor, accessKey, secret string, err error) {
	if !posixName.MatchString(username) {
		return Actor{}, "", "", invalid("username", "username %q is not a valid POSIX user name (lower-case letters, digits, '_' and '-', at most 32)", username)
	}
	if uid <= 0 || uid == 65534 {
		return Actor{}, "", "", invalid("uid", "uid %d: give the user's POSIX uid from the cluster's directory", uid)
	}
	if email != "" {
		if _, err := mail.ParseAddress(email); err != nil {
			return Actor{}, "", "", invalid("email", "email %q is not an address", email)
		}
	}
	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		// Two concurrent bootstraps must not both find no superadmin.
		const bootstrapLock = 0x5347424f4f54 // "SGBOOT"
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(bootstrapLock)); err != nil {
			return err
		}
		var existing string
		err := tx.QueryRow(ctx, `SELECT username FROM users WHERE role = 'superadmin' ORDER BY id LIMIT 1`).Scan(&existing)
		if err == nil {
			return conflict("already bootstrapped: superadmin %s exists; ask them for an account", existing)
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO domains (name, description) VALUES ('default', 'created by bootstrap')
			ON CONFLICT (name) DO NOTHING`); err != nil {
			return err
		}
		actor = Actor{Username: username, Role: RoleSuperadmin}
		err = tx.QueryRow(ctx, `INSERT INTO users (username, uid, email, domain_id, role)
			SELECT $1, $2, $3, id, 'superadmin' FROM domains WHERE name = 'default' RETURNING id, domain_id`,
			username, uid, email).Scan(&actor.UserID, &actor.DomainID)
		if err != nil {
			return dbError(err, fmt.Sprintf("user %s (uid %d)", username, uid))
		}
		accessKey, secret, err = b.insertKeypair(ctx, tx, actor.UserID, "bootstrap")
		return err
	})
	if err != nil {
		return Actor{}, "", "", err
	}
	b.notifyOrgChange()
	return actor, accessKey, secret, nil
}
