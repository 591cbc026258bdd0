package bridge

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Device logins, in the shape of OAuth 2.0 device authorization (RFC 8628)
// but run by the gateway itself, so they work with any portal login (local,
// LDAP or an OIDC provider without device flow): a client without a browser
// starts one and shows its user code; a person logged in to the portal
// approves or denies it; the client's poll then gets a new keypair of the
// approver's, once. Only the codes' SHA-256 are stored.

const (
	// DeviceLoginTTL is how long a person has to approve a device login.
	DeviceLoginTTL = 10 * time.Minute
	// DeviceLoginInterval is the least time between a client's polls.
	DeviceLoginInterval = 2 * time.Second
	deviceCodePrefix    = "sgd_"
	// userCodeAlphabet has no vowels (no words) and nothing that reads as
	// another character (0/O, 1/I/L, 5/S…): RFC 8628 §6.1's suggestion.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLen      = 8
)

// The states of a poll that has no keypair to give; the API answers each
// with the RFC 8628 error code it names.
var (
	ErrAuthorizationPending = errors.New("authorization_pending: nobody has approved this login yet; keep polling")
	ErrSlowDown             = errors.New("slow_down: polled faster than the interval; wait longer between polls")
	ErrAccessDenied         = errors.New("access_denied: the login was denied in the portal")
	ErrExpiredToken         = errors.New("expired_token: this login is unknown, expired or already used; start a new one")
)

// DeviceLogin is a started device login: the device code is the client's
// secret, the user code what the person types or confirms in the portal.
type DeviceLogin struct {
	DeviceCode string
	UserCode   string // "BCDF-GHJK"
	ExpiresAt  time.Time
	Interval   time.Duration
}

// PendingDeviceLogin is what the approver is shown.
type PendingDeviceLogin struct {
	UserCode  string    `json:"user_code"`
	Client    string    `json:"client"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// newUserCode is 8 characters of userCodeAlphabet (about 34.6 bits), shown
// as two groups of four.
func newUserCode() string {
	var b [userCodeLen]byte
	for i := range b {
		// rand.Text's technique is overkill here: reject bytes past the
		// largest multiple of the alphabet's size to keep it uniform.
		for {
			var c [1]byte
			rand.Read(c[:])
			if int(c[0]) < 256/len(userCodeAlphabet)*len(userCodeAlphabet) {
				b[i] = userCodeAlphabet[int(c[0])%len(userCodeAlphabet)]
				break
			}
		}
	}
	return string(b[:4]) + "-" + string(b[4:])
}

// normaliseUserCode accepts what people type: any case, with or without the
// dash or spaces.
func normaliseUserCode(code string) (string, error) {
	code = strings.Map(func(r rune) rune {
		switch r {
		case '-', ' ', '\t':
			return -1
		}
		return r
	}, strings.ToUpper(code))
	if len(code) != userCodeLen || strings.Trim(code, userCodeAlphabet) != "" {
		return "", invalid("user_code", "user code %q is not a code this gateway gives out: 8 letters such as BCDF-GHJK, as the CLI printed it", code)
	}
	return code, nil
}

// StartDeviceLogin starts a device login for a client that describes itself
// as client (e.g. "slurmgate CLI on login1"; at most 200 characters, as it
// becomes the keypair's description).
func (b *Bridge) StartDeviceLogin(ctx context.Context, client string) (DeviceLogin, error) {
	client = strings.TrimSpace(client)
	switch {
	case client == "":
		return DeviceLogin{}, invalid("client", "describe the client (e.g. \"slurmgate CLI on login1\"): the approver is shown it")
	case len(client) > 200:
		return DeviceLogin{}, invalid("client", "client description is %d characters; at most 200", len(client))
	case strings.ContainsFunc(client, func(r rune) bool { return r < ' ' || r == 0x7f }):
		return DeviceLogin{}, invalid("client", "client description holds control characters")
	}
	d := DeviceLogin{
		DeviceCode: deviceCodePrefix + base64.RawURLEncoding.EncodeToString(randomBytes(32)),
		ExpiresAt:  b.now().Add(DeviceLoginTTL).Truncate(time.Microsecond),
		Interval:   DeviceLoginInterval,
	}
	// A user code must be unique among live logins; a clash (one in tens of
	// billions) just draws again.
	for range 3 {
		d.UserCode = newUserCode()
		norm, _ := normaliseUserCode(d.UserCode)
		tag, err := b.db.Exec(ctx, `INSERT INTO device_logins (device_code_hash, user_code_hash, client, expires_at, interval_s)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_code_hash) DO NOTHING`,
			tokenHash(d.DeviceCode), tokenHash(norm), client, d.ExpiresAt, int(d.Interval/time.Second))
		if err != nil {
			return DeviceLogin{}, fmt.Errorf("storing the device login: %w", err)
		}
		if tag.RowsAffected() == 1 {
			// Logins an hour past their end only keep the table large (an
			// hour keeps "expired" answerable to a late poll instead of
			// "unknown"); starts are rate-limited per address by the API.
			if _, err := b.db.Exec(ctx, `DELETE FROM device_logins WHERE expires_at < now() - interval '1 hour'`); err != nil {
				b.log.Warn("purging old device logins", "err", err)
			}
			return d, nil
		}
	}
	return DeviceLogin{}, errors.New("could not draw an unused user code in 3 tries; the device_logins table holds stale rows")
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// DeviceLoginToApprove returns the pending login a user code names, for the
// approver to see what they allow. An unknown, expired or decided code is
// not found.
func (b *Bridge) DeviceLoginToApprove(ctx context.Context, userCode string) (PendingDeviceLogin, error) {
	norm, err := normaliseUserCode(userCode)
	if err != nil {
		return PendingDeviceLogin{}, err
	}
	p := PendingDeviceLogin{UserCode: norm[:4] + "-" + norm[4:]}
	err = b.db.QueryRow(ctx, `SELECT client, created_at, expires_at FROM device_logins
		WHERE user_code_hash = $1 AND decided_at IS NULL AND expires_at > $2`, tokenHash(norm), b.now()).
		Scan(&p.Client, &p.CreatedAt, &p.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PendingDeviceLogin{}, deviceCodeNotFound(p.UserCode)
	}
	return p, err
}

func deviceCodeNotFound(userCode string) *Error {
	return &Error{Kind: KindNotFound, Message: fmt.Sprintf("no pending login has code %s: it expired (they last %v), was already decided, or was mistyped; start the login again on the device", userCode, DeviceLoginTTL)}
}

// DecideDeviceLogin records the actor's answer to a pending login. When
// allowed, the keypair the client's next poll gets is the actor's: whoever
// approves is who the client acts as.
func (b *Bridge) DecideDeviceLogin(ctx context.Context, a Actor, userCode string, allow bool) (PendingDeviceLogin, error) {
	norm, err := normaliseUserCode(userCode)
	if err != nil {
		return PendingDeviceLogin{}, err
	}
	if a.UserID == 0 {
		return PendingDeviceLogin{}, forbidden("device logins are approved by a user, who then owns the keypair")
	}
	p := PendingDeviceLogin{UserCode: norm[:4] + "-" + norm[4:]}
	err = b.db.QueryRow(ctx, `UPDATE device_logins SET decided_by = $2, allowed = $3, decided_at = $4
		WHERE user_code_hash = $1 AND decided_at IS NULL AND expires_at > $4
		RETURNING client, created_at, expires_at`, tokenHash(norm), a.UserID, allow, b.now()).
		Scan(&p.Client, &p.CreatedAt, &p.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PendingDeviceLogin{}, deviceCodeNotFound(p.UserCode)
	}
	return p, err
}

// PollDeviceLogin is the client's poll. It returns the approver's new
// keypair once, then consumes the login; otherwise one of
// ErrAuthorizationPending, ErrSlowDown, ErrAccessDenied or ErrExpiredToken.
// Every poll counts for the interval, so a client that ignores slow_down
// keeps getting it.
func (b *Bridge) PollDeviceLogin(ctx context.Context, deviceCode string) (accessKey, secret, username string, err error) {
	if !strings.HasPrefix(deviceCode, deviceCodePrefix) {
		return "", "", "", ErrExpiredToken
	}
	// The poll is recorded (last_polled_at) whatever it answers, so the
	// transaction commits the "not yet" answers too: they are outcomes,
	// not failures.
	var outcome error
	err = pgx.BeginFunc(ctx, b.db, func(tx pgx.Tx) error {
		var (
			client           string
			expires          time.Time
			interval         int
			lastPoll         *time.Time
			decidedBy        *int64
			allowed          *bool
			consumed         *time.Time
			approverUsername *string
		)
		err := tx.QueryRow(ctx, `SELECT d.client, d.expires_at, d.interval_s, d.last_polled_at, d.decided_by, d.allowed, d.consumed_at, u.username
			FROM device_logins d LEFT JOIN users u ON u.id = d.decided_by
			WHERE d.device_code_hash = $1 FOR UPDATE OF d`, tokenHash(deviceCode)).
			Scan(&client, &expires, &interval, &lastPoll, &decidedBy, &allowed, &consumed, &approverUsername)
		switch {
		case errors.Is(err, pgx.ErrNoRows), err == nil && consumed != nil:
			outcome = ErrExpiredToken
			return nil
		case err != nil:
			return err
		}
		now := b.now()
		if _, err := tx.Exec(ctx, `UPDATE device_logins SET last_polled_at = $2 WHERE device_code_hash = $1`, tokenHash(deviceCode), now); err != nil {
			return err
		}
		switch {
		case !now.Before(expires):
			outcome = ErrExpiredToken
		case lastPoll != nil && now.Sub(*lastPoll) < time.Duration(interval)*time.Second:
			outcome = ErrSlowDown
		case allowed == nil:
			outcome = ErrAuthorizationPending
		case !*allowed:
			outcome = ErrAccessDenied
		}
		if outcome != nil {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE device_logins SET consumed_at = $2 WHERE device_code_hash = $1`, tokenHash(deviceCode), now); err != nil {
			return err
		}
		username = *approverUsername
		accessKey, secret, err = b.insertKeypair(ctx, tx, *decidedBy, client)
		return err
	})
	if err == nil {
		err = outcome
	}
	if err != nil {
		return "", "", "", err
	}
	return accessKey, secret, username, nil
}
