package sign

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSignKnownVector pins the algorithm: the expected signature was
// computed independently (Python's hmac module), so a client written in any
// language can check itself against it.
func TestSignKnownVector(t *testing.T) {
	body := []byte(`{"description":"ci"}`)
	u, _ := url.Parse("https://gw.example.org/api/v1/keypairs?b=x+y&a=2&a=1")
	hash := BodyHash(body)
	if hash != "fe637163a9046344f0b59d24d94a2174bac7366c1b1285371eaa1e2501709cc8" {
		t.Fatalf("BodyHash = %s", hash)
	}
	sts, err := StringToSign("POST", u, "2026-03-01T12:00:00Z", "N0NCE", hash)
	if err != nil {
		t.Fatal(err)
	}
	sig := Compute([]byte("SECRETSECRETSECRETSECRETSECRETSECRET1234"), sts)
	if got, want := hex.EncodeToString(sig), "5b09c6e128adbf86f3de341ef547b87c7ea0bf3f5458aa99dcb409041cfc7bf5"; got != want {
		t.Fatalf("signature %s, want %s over %q", got, want, sts)
	}
}

func TestSignSetsHeaders(t *testing.T) {
	body := []byte(`{}`)
	at := time.Date(2026, 3, 1, 13, 0, 0, 0, time.FixedZone("CET", 3600))
	sign := func() *http.Request {
		r, _ := http.NewRequest("POST", "https://gw.example.org/api/v1/tokens", bytes.NewReader(body))
		if err := Sign(r, body, "SGAKAAAAAAAAAAAAAAAA", []byte("secret"), at); err != nil {
			t.Fatal(err)
		}
		return r
	}
	r1, r2 := sign(), sign()
	if d := r1.Header.Get(DateHeader); d != "2026-03-01T12:00:00Z" {
		t.Errorf("%s = %q, want UTC RFC 3339", DateHeader, d)
	}
	if h := r1.Header.Get(ContentSHA256Header); h != BodyHash(body) {
		t.Errorf("%s = %q", ContentSHA256Header, h)
	}
	n1, n2 := r1.Header.Get(NonceHeader), r2.Header.Get(NonceHeader)
	if n1 == "" || n1 == n2 || len(n1) > MaxNonceLen {
		t.Errorf("nonces %q and %q: want two different ones", n1, n2)
	}
	// The same request twice in one second still signs differently.
	if r1.Header.Get("Authorization") == r2.Header.Get("Authorization") {
		t.Error("two identical requests have the same signature")
	}
	ak, sig, err := ParseAuthorization(r1.Header.Get("Authorization"))
	sts, _ := StringToSign("POST", r1.URL, r1.Header.Get(DateHeader), n1, BodyHash(body))
	if err != nil || ak != "SGAKAAAAAAAAAAAAAAAA" || !bytes.Equal(sig, Compute([]byte("secret"), sts)) {
		t.Errorf("Authorization %q does not verify", r1.Header.Get("Authorization"))
	}
}

func TestSignStringToSign(t *testing.T) {
	u, _ := url.Parse("http://h/api/v1/keypairs/SGAK%2Fx?limit=2&cursor=a%20b")
	got, err := StringToSign("get", u, "D", "N", "H")
	if err != nil {
		t.Fatal(err)
	}
	want := "SG-HMAC-SHA256\nD\nN\nGET\n/api/v1/keypairs/SGAK%2Fx\ncursor=a+b&limit=2\nH"
	if got != want {
		t.Fatalf("StringToSign = %q, want %q", got, want)
	}
	// The order the query was written in does not matter; its content does.
	same, _ := url.Parse("http://other-host/api/v1/keypairs/SGAK%2Fx?cursor=a+b&limit=2")
	if s, _ := StringToSign("GET", same, "D", "N", "H"); s != want {
		t.Fatalf("reordered query: %q, want %q", s, want)
	}
	for _, changed := range []string{
		"http://h/api/v1/keypairs/SGAK%2Fx?limit=3&cursor=a%20b",
		"http://h/api/v1/keypairs/SGAK/x?limit=2&cursor=a%20b",
		"http://h/api/v1/keypairs/SGAK%2Fx?limit=2",
	} {
		u, _ := url.Parse(changed)
		if s, _ := StringToSign("GET", u, "D", "N", "H"); s == want {
			t.Errorf("%s signs like the original", changed)
		}
	}
	bad, _ := url.Parse("http://h/x?a=%zz")
	if _, err := StringToSign("GET", bad, "D", "N", "H"); err == nil {
		t.Error("a malformed query should not sign")
	}
}

func TestSignParseAuthorization(t *testing.T) {
	sig := bytes.Repeat([]byte{0xab}, 32)
	ak, got, err := ParseAuthorization(Authorization("SGAKX", sig))
	if err != nil || ak != "SGAKX" || !bytes.Equal(got, sig) {
		t.Fatalf("round trip: %q, %x, %v", ak, got, err)
	}
	ak, _, err = ParseAuthorization("SG-HMAC-SHA256 Signature=" + hex.EncodeToString(sig) + ",Credential=SGAKY")
	if err != nil || ak != "SGAKY" {
		t.Fatalf("parameters in another order: %q, %v", ak, err)
	}
	for _, bad := range []string{
		"",
		"Bearer x",
		"SG-HMAC-SHA256 Credential=SGAKX",
		"SG-HMAC-SHA256 Credential=SGAKX, Signature=abcd",
		"SG-HMAC-SHA256 Credential=SGAKX, Signature=" + strings.Repeat("z", 64),
		"SG-HMAC-SHA256 Credential=SGAKX, Signature=" + hex.EncodeToString(sig) + ", Extra=1",
		"SG-HMAC-SHA256 Credential",
	} {
		if _, _, err := ParseAuthorization(bad); err == nil {
			t.Errorf("ParseAuthorization(%q) succeeded", bad)
		}
	}
}

// The canonical query sorts the escaped name=value strings as bytes, as the
// package doc says: not by name first. Clients in other languages follow
// the doc, so the two must not drift.
func TestSignCanonicalQuerySortsJoinedPairs(t *testing.T) {
	got, err := canonicalQuery("a=1&a-b=2&b=%2F&a=0")
	if err != nil {
		t.Fatal(err)
	}
	if want := "a-b=2&a=0&a=1&b=%2F"; got != want {
		t.Fatalf("canonical query %q; want %q", got, want)
	}
}
