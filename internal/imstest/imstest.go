// Package imstest plays an identity provider for tests of
// xtk:session#BearerTokenLogon: it generates an RSA key, publishes it as a
// JWK Set file, and mints bearer tokens signed with it.
package imstest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Issuer and Audience of the tokens Provider mints.
const (
	Issuer   = "https://ims.campaign-privacy.test"
	Audience = "campaign-privacy-test"
	KeyID    = "test-rsa-1"
)

// Provider is a test identity provider.
type Provider struct {
	key *rsa.PrivateKey
	// JWKSFile is the path of the published key set (CP_IMS_JWKS).
	JWKSFile string
}

// New generates a key and writes its JWK Set in a temporary directory.
func New(t testing.TB) *Provider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &Provider{key: key, JWKSFile: filepath.Join(t.TempDir(), "jwks.json")}
	if err := os.WriteFile(p.JWKSFile, p.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// JWKS returns the public key set.
func (p *Provider) JWKS() []byte {
	enc := base64.RawURLEncoding.EncodeToString
	out, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": KeyID, "use": "sig", "alg": "RS256",
		"n": enc(p.key.N.Bytes()), "e": enc(big.NewInt(int64(p.key.E)).Bytes()),
	}}})
	return out
}

// Token mints a token for the operator login, valid for ttl from now
// (negative: already expired), with the test issuer and audience.
func (p *Provider) Token(t testing.TB, login string, now time.Time, ttl time.Duration) string {
	t.Helper()
	return p.Sign(t, jwt.MapClaims{"iss": Issuer, "aud": Audience, "sub": login, "iat": now.Unix(), "exp": now.Add(ttl).Unix()})
}

// IMSToken mints a token in Adobe IMS's own form for the operator login:
// no iss, aud nor exp, but "as" (Issuer), "client_id" (Audience),
// "user_id", and created_at and expires_in in milliseconds, as strings.
// Valid for ttl from now (negative: already expired).
func (p *Provider) IMSToken(t testing.TB, login string, now time.Time, ttl time.Duration) string {
	t.Helper()
	created := now
	if ttl < 0 {
		created, ttl = now.Add(2*ttl), -ttl
	}
	return p.Sign(t, jwt.MapClaims{"type": "access_token", "as": Issuer, "client_id": Audience, "user_id": login,
		"created_at": strconv.FormatInt(created.UnixMilli(), 10), "expires_in": strconv.FormatInt(ttl.Milliseconds(), 10)})
}

// Sign signs any claims with the published key.
func (p *Provider) Sign(t testing.TB, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = KeyID
	s, err := tok.SignedString(p.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
