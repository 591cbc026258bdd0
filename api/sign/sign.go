// Package sign is Slurmgate's keypair request signing, SG-HMAC-SHA256: the
// one definition of the string to sign that the gateway verifies and every
// client (api/client, scripts in other languages) produces. It imports only
// the standard library so that clients need nothing of the server.
//
// A signed request carries four headers:
//
//	X-SG-Date:           2026-03-01T12:00:00Z   (RFC 3339; the server allows bounded clock skew)
//	X-SG-Nonce:          <1 to 128 characters, different for every request>
//	X-SG-Content-SHA256: <hex SHA-256 of the body; of the empty string when there is none>
//	Authorization:       SG-HMAC-SHA256 Credential=<access key>, Signature=<hex HMAC>
//
// The signature is HMAC-SHA256, keyed by the secret key's text, over
//
//	SG-HMAC-SHA256 "\n" date "\n" nonce "\n" METHOD "\n" escaped path "\n" canonical query "\n" body hash
//
// where the canonical query is made of one string per parameter value,
// name "=" value with each escaped as by [url.QueryEscape], sorted as byte
// strings and joined with "&" (so "a-b=2" sorts before "a=1", since '-' is
// below '='), and the body hash is lower-case hex. The server accepts each signature once; the
// date bounds how long it must remember them, and the nonce lets a client
// send the same request twice in one second. The host is deliberately not
// signed, so a request survives reverse proxies.
package sign

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scheme is the Authorization scheme of signed requests.
const Scheme = "SG-HMAC-SHA256"

// Header names a signed request carries besides Authorization.
const (
	DateHeader          = "X-SG-Date"
	NonceHeader         = "X-SG-Nonce"
	ContentSHA256Header = "X-SG-Content-SHA256"
)

// MaxNonceLen bounds the nonce the server accepts.
const MaxNonceLen = 128

// BodyHash returns the hex SHA-256 of a request body, the value of
// [ContentSHA256Header].
func BodyHash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// StringToSign returns the canonical string a request's signature covers. It
// fails only when u's query cannot be parsed.
func StringToSign(method string, u *url.URL, date, nonce, bodyHash string) (string, error) {
	query, err := canonicalQuery(u.RawQuery)
	if err != nil {
		return "", err
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	return strings.Join([]string{Scheme, date, nonce, strings.ToUpper(method), path, query, bodyHash}, "\n"), nil
}

// canonicalQuery sorts the escaped name=value strings bytewise (the package
// doc says so exactly) so that a client and the server agree however the
// query was written.
func canonicalQuery(raw string) (string, error) {
	values, err := url.ParseQuery(raw)
	if err != nil {
		return "", fmt.Errorf("query string: %w", err)
	}
	pairs := make([]string, 0, len(values))
	for name, vs := range values {
		for _, v := range vs {
			pairs = append(pairs, url.QueryEscape(name)+"="+url.QueryEscape(v))
		}
	}
	slices.Sort(pairs)
	return strings.Join(pairs, "&"), nil
}

// Compute returns HMAC-SHA256 of stringToSign keyed by secret. Compare the
// result with [hmac.Equal], never with ==.
func Compute(secret []byte, stringToSign string) []byte {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(stringToSign))
	return mac.Sum(nil)
}

// Sign adds the signing headers to r, whose body is body (nil for none), as
// of now, with a random nonce.
func Sign(r *http.Request, body []byte, accessKey string, secret []byte, now time.Time) error {
	date, nonce, hash := now.UTC().Format(time.RFC3339), rand.Text(), BodyHash(body)
	sts, err := StringToSign(r.Method, r.URL, date, nonce, hash)
	if err != nil {
		return err
	}
	r.Header.Set(DateHeader, date)
	r.Header.Set(NonceHeader, nonce)
	r.Header.Set(ContentSHA256Header, hash)
	r.Header.Set("Authorization", Authorization(accessKey, Compute(secret, sts)))
	return nil
}

// Authorization formats the Authorization header value of a signed request.
func Authorization(accessKey string, signature []byte) string {
	return Scheme + " Credential=" + accessKey + ", Signature=" + hex.EncodeToString(signature)
}

// ParseAuthorization reads an Authorization header value written by
// [Authorization]. Parameter order and the spaces after commas are free.
func ParseAuthorization(value string) (accessKey string, signature []byte, err error) {
	scheme, params, _ := strings.Cut(strings.TrimSpace(value), " ")
	if scheme != Scheme {
		return "", nil, fmt.Errorf("authorization scheme is %q, not %s", scheme, Scheme)
	}
	var sigHex string
	for param := range strings.SplitSeq(params, ",") {
		name, val, ok := strings.Cut(strings.TrimSpace(param), "=")
		switch {
		case !ok:
			return "", nil, fmt.Errorf("authorization parameter %q is not name=value", strings.TrimSpace(param))
		case name == "Credential":
			accessKey = val
		case name == "Signature":
			sigHex = val
		default:
			return "", nil, fmt.Errorf("unknown authorization parameter %q", name)
		}
	}
	if accessKey == "" || sigHex == "" {
		return "", nil, fmt.Errorf("%s needs Credential=<access key> and Signature=<hex>", Scheme)
	}
	if signature, err = hex.DecodeString(sigHex); err != nil || len(signature) != sha256.Size {
		return "", nil, fmt.Errorf("the Signature parameter must be %d hex digits", 2*sha256.Size)
	}
	return accessKey, signature, nil
}
