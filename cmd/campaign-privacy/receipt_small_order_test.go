package main

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestSmallOrderReceiptKeyRefused: Go's ed25519.Verify is cofactorless.
// With a public key of small order (the identity point, 01 00…00), the
// signature R = identity, s = 0 satisfies [s]B = R + [k]A whatever the
// message: anyone forges a receipt that "verifies". Such a key, given as
// --public-key or in CP_RECEIPT_PREVIOUS_KEYS (an operator pasting a key
// someone handed them), is refused at load, in each of its encodings.
func TestSmallOrderReceiptKeyRefused(t *testing.T) {
	identity := make([]byte, 32)
	identity[0] = 1
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"JWT"}`))
	payload := base64.RawURLEncoding.EncodeToString([]byte(`{"request_id":7,"request_name":"privacyRequest7","status":"complete","method":"forged"}`))
	sig := append(append([]byte{}, identity...), make([]byte, 32)...)
	forged := header + "." + payload + "." + base64.RawURLEncoding.EncodeToString(sig)
	if _, err := privacy.VerifyReceipt(forged, []ed25519.PublicKey{identity}); err != nil {
		t.Fatalf("the forged receipt does not verify with the identity key (%v): the test proves nothing", err)
	}
	file := filepath.Join(t.TempDir(), "forged.jws")
	if err := os.WriteFile(file, []byte(forged), 0o600); err != nil {
		t.Fatal(err)
	}
	// The eight points of small order, canonical or not, either sign.
	smallOrder := []string{
		"0000000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000000",
		"0100000000000000000000000000000000000000000000000000000000000080",
		"26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
		"c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
		"ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
		"edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
		"eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
	}
	env := testEnv(t, "sqlite")
	for _, k := range smallOrder {
		out, err := run(t, env, "", "receipt", "verify", file, "--public-key", k)
		if err == nil || !strings.Contains(errorText(err), "small order") {
			t.Errorf("receipt verify --public-key %s: %v %s", k, err, out)
		}
		b, _ := hex.DecodeString(k)
		env["CP_RECEIPT_PREVIOUS_KEYS"] = base64.StdEncoding.EncodeToString(b)
		if _, err := receiptPreviousKeys(mustSettings(t, env)); err == nil || !strings.Contains(err.Error(), "small order") {
			t.Errorf("CP_RECEIPT_PREVIOUS_KEYS=%s: %v", k, err)
		}
	}
	// An ordinary key still loads.
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodePublicKey(hex.EncodeToString(pub)); err != nil {
		t.Errorf("an ordinary key: %v", err)
	}
}

// mustSettings parses env as a command would.
func mustSettings(t *testing.T, env map[string]string) *settings {
	t.Helper()
	m := &Main{Stderr: os.Stderr, Getenv: func(k string) string { return env[k] }}
	_, s, err := m.parse("test", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
