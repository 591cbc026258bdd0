package bridge

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// deviceClock makes the bridge's clock a test's to move.
func deviceClock(b *Bridge) (advance func(time.Duration)) {
	var now atomic.Pointer[time.Time]
	start := time.Now()
	now.Store(&start)
	b.now = func() time.Time { return *now.Load() }
	return func(d time.Duration) { n := now.Load().Add(d); now.Store(&n) }
}

func TestDeviceLoginApprovedOnceToTheApprover(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	advance := deviceClock(b)
	d, err := b.StartDeviceLogin(ctx, "slurmgate CLI on login1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(d.DeviceCode, deviceCodePrefix) || len(d.UserCode) != 9 || d.UserCode[4] != '-' || d.Interval != DeviceLoginInterval {
		t.Fatalf("started %+v", d)
	}
	// Only hashes are stored: neither code appears in the row.
	var raw string
	if err := b.db.QueryRow(ctx, `SELECT row_to_json(d)::text FROM device_logins d`).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(raw, d.DeviceCode) || strings.Contains(raw, strings.ReplaceAll(d.UserCode, "-", "")) {
		t.Fatalf("a code is stored in the clear: %s", raw)
	}

	if _, _, _, err := b.PollDeviceLogin(ctx, d.DeviceCode); !errors.Is(err, ErrAuthorizationPending) {
		t.Fatalf("first poll: %v, want pending", err)
	}
	// People type codes loosely.
	p, err := b.DeviceLoginToApprove(ctx, strings.ToLower(strings.ReplaceAll(d.UserCode, "-", " ")))
	if err != nil || p.Client != "slurmgate CLI on login1" || p.UserCode != d.UserCode {
		t.Fatalf("to approve: %+v %v", p, err)
	}
	// bob approves: the keypair is bob's, whoever started the login.
	if _, err := b.DecideDeviceLogin(ctx, w.bob, d.UserCode, true); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DecideDeviceLogin(ctx, w.alice, d.UserCode, true); KindOf(err) != KindNotFound {
		t.Fatalf("second decision: %v, want not found", err)
	}
	advance(DeviceLoginInterval)
	ak, sk, user, err := b.PollDeviceLogin(ctx, d.DeviceCode)
	if err != nil || user != "bob" {
		t.Fatalf("poll after approval: %q %v", user, err)
	}
	secret, actor, err := b.KeypairSecret(ctx, ak)
	if err != nil || string(secret) != sk || actor.UserID != w.bob.UserID {
		t.Fatalf("minted keypair acts as %+v (%v)", actor, err)
	}
	kps, err := b.ListKeypairs(ctx, w.bob, w.bob.UserID, nil, 10)
	if err != nil || len(kps) != 1 || kps[0].Description != "slurmgate CLI on login1" {
		t.Fatalf("bob's keypairs: %+v %v", kps, err)
	}
	// Once: the code is consumed.
	advance(DeviceLoginInterval)
	if _, _, _, err := b.PollDeviceLogin(ctx, d.DeviceCode); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("poll after the keypair was taken: %v, want expired_token", err)
	}
	if kps, _ := b.ListKeypairs(ctx, w.bob, w.bob.UserID, nil, 10); len(kps) != 1 {
		t.Fatalf("a second poll minted again: %+v", kps)
	}
}

func TestDeviceLoginDeniedExpiredSlowDown(t *testing.T) {
	w := newCredWorld(t)
	b, ctx := w.b, t.Context()
	advance := deviceClock(b)

	denied, err := b.StartDeviceLogin(ctx, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.DecideDeviceLogin(ctx, w.alice, denied.UserCode, false); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := b.PollDeviceLogin(ctx, denied.DeviceCode); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("denied: %v", err)
	}

	slow, err := b.StartDeviceLogin(ctx, "cli")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := b.PollDeviceLogin(ctx, slow.DeviceCode); !errors.Is(err, ErrAuthorizationPending) {
		t.Fatalf("first poll: %v", err)
	}
	advance(DeviceLoginInterval / 2)
	if _, _, _, err := b.PollDeviceLogin(ctx, slow.DeviceCode); !errors.Is(err, ErrSlowDown) {
		t.Fatalf("poll after half the interval: %v, want slow_down", err)
	}
	// The too-early poll counts: waiting only the rest of the interval is
	// still too soon.
	advance(DeviceLoginInterval / 2)
	if _, _, _, err := b.PollDeviceLogin(ctx, slow.DeviceCode); !errors.Is(err, ErrSlowDown) {
		t.Fatalf("poll a full interval after the first but half after the last: %v, want slow_down", err)
	}
	advance(DeviceLoginInterval)
	if _, _, _, err := b.PollDeviceLogin(ctx, slow.DeviceCode); !errors.Is(err, ErrAuthorizationPending) {
		t.Fatalf("poll after a full interval: %v, want pending", err)
	}

	advance(DeviceLoginTTL)
	if _, err := b.DecideDeviceLogin(ctx, w.alice, slow.UserCode, true); KindOf(err) != KindNotFound {
		t.Fatalf("approving an expired login: %v, want not found", err)
	}
	if _, _, _, err := b.PollDeviceLogin(ctx, slow.DeviceCode); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("expired: %v", err)
	}
	if _, _, _, err := b.PollDeviceLogin(ctx, "sgd_unknown"); !errors.Is(err, ErrExpiredToken) {
		t.Fatalf("unknown code: %v", err)
	}
	for _, bad := range []string{"", "ABC", "AAAA-AAAA", "BCDF-GHJ0"} {
		if _, err := b.DecideDeviceLogin(ctx, w.alice, bad, true); KindOf(err) != KindInvalid {
			t.Errorf("user code %q: %v, want invalid", bad, err)
		}
	}
	for _, bad := range []string{"", strings.Repeat("x", 201), "evil\nline"} {
		if _, err := b.StartDeviceLogin(ctx, bad); KindOf(err) != KindInvalid {
			t.Errorf("client %q: %v, want invalid", bad, err)
		}
	}
}
