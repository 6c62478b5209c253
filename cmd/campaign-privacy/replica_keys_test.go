package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestReplicasMustShareTheirKeys: each replica made the key files missing
// from its own CP_DATA_DIR, so two PostgreSQL replicas with data
// directories of their own both started: a file collected on one did not
// open on the other ("The export key does not open this file.", a 500 for
// half the downloads), the console's search by value missed the requests
// hashed under the other subject key, and receipts were signed with two
// keys. The first start records the keys' fingerprints in the database; a
// start with a key that matches none is refused, naming the key. A
// rotation (the instance's key among the previous ones) is accepted, and
// then a replica still on the old key is refused. The session key too: a
// session token signed by one replica was refused by the next.
func TestReplicasMustShareTheirKeys(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			with := func(kv ...string) map[string]string {
				e := maps.Clone(env)
				for i := 0; i < len(kv); i += 2 {
					e[kv[i]] = kv[i+1]
				}
				return e
			}
			starts := func(what string, e map[string]string) {
				t.Helper()
				if out, err := run(t, e, "", "migrate"); err != nil {
					t.Fatalf("%s: refused: %s\n%s", what, errorText(err), out)
				}
			}
			refused := func(what string, e map[string]string, want ...string) {
				t.Helper()
				_, err := run(t, e, "", "migrate")
				if err == nil {
					t.Fatalf("%s: started; want it refused", what)
				}
				msg := errorText(err)
				for _, w := range append(want, "must share") {
					if !strings.Contains(msg, w) {
						t.Errorf("%s: refused with %q; want it to say %q", what, msg, w)
					}
				}
			}
			starts("the first replica", env)
			keyFile := func(name string) string {
				b, err := os.ReadFile(filepath.Join(env["CP_DATA_DIR"], name))
				if err != nil {
					t.Fatal(err)
				}
				return strings.TrimSpace(string(b))
			}
			if dialect == store.Postgres {
				// The finding: a replica with a data directory of its own.
				refused("a replica with its own data directory", with("CP_DATA_DIR", filepath.Join(t.TempDir(), "data")),
					"export key", "subject key", "receipt key", "session key")
			}
			other := strings.Repeat("ab", 32)
			refused("another subject key", with("CP_SUBJECT_KEY", other), "subject key")

			// The export key's rotation: the new key, the old one previous.
			oldExport := keyFile("export.key")
			rotated := with("CP_EXPORT_KEY", other, "CP_EXPORT_PREVIOUS_KEYS", oldExport)
			starts("the export key rotated", rotated)
			starts("the export key rotated, again", rotated)
			refused("a replica still on the export key before the rotation", env, "export key")
			starts("the previous key retired", with("CP_EXPORT_KEY", other))

			// The receipt key's rotation: the old public key kept for verify.
			seed, err := hex.DecodeString(keyFile("receipt.key"))
			if err != nil {
				t.Fatal(err)
			}
			oldPublic := hex.EncodeToString(ed25519.NewKeyFromSeed(seed[:32]).Public().(ed25519.PublicKey))
			refused("another receipt key", with("CP_EXPORT_KEY", other, "CP_RECEIPT_KEY", other), "receipt key")
			starts("the receipt key rotated", with("CP_EXPORT_KEY", other, "CP_RECEIPT_KEY", other, "CP_RECEIPT_PREVIOUS_KEYS", oldPublic))

			// The session key: a token one replica signs must verify on
			// the next.
			oldSession := keyFile("session.key")
			rotatedBefore := []string{"CP_EXPORT_KEY", other, "CP_RECEIPT_KEY", other}
			refused("another session key", with(append(rotatedBefore, "CP_SESSION_KEY", other)...), "session key")
			starts("the session key rotated", with(append(rotatedBefore, "CP_SESSION_KEY", other, "CP_SESSION_PREVIOUS_KEYS", oldSession)...))
			refused("a replica still on the session key before the rotation", with(rotatedBefore...), "session key")
		})
	}
}
