package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestProofCommands runs the real binary: an access and a one-step delete
// get receipts that receipt verify accepts (with the instance's key and
// with the printed public key); one changed byte and an edited audit line
// make receipt verify and audit verify exit 1, naming what broke.
func TestProofCommands(t *testing.T) {
	bin := buildBinary(t)
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			env := testEnv(t, dialect)
			if out, err := run(t, env, "", "demo-data", "--recipients", "3"); err != nil {
				t.Fatalf("demo-data: %v %s", err, out)
			}
			exe := func(args ...string) (string, int) {
				t.Helper()
				cmd := exec.Command(bin, args...)
				cmd.Env = os.Environ()
				for k, v := range env {
					cmd.Env = append(cmd.Env, k+"="+v)
				}
				out, err := cmd.CombinedOutput()
				if ee, ok := err.(*exec.ExitError); ok {
					return string(out), ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				return string(out), 0
			}
			ctx := context.Background()
			m := &Main{Stderr: os.Stderr, Getenv: func(k string) string { return env[k] }}
			_, s, err := m.parse("test", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			a, err := m.open(ctx, s, m.logger(s))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			caller := &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
			var ids []int64
			for i, typ := range []int64{privacy.TypeAccess, privacy.TypeDelete} {
				id, err := a.Privacy.CreateRequestByName(ctx, caller, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
					ReconciliationValue: demodata.Email(int64(i + 1)), Type: typ, DownloadURL: "http://x/nms/gdpr.jssp?id="})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, id)
			}
			if out, code := exe("workflow", "run", "all"); code != 0 {
				t.Fatalf("workflow run all: %d %s", code, out)
			}
			pem, code := exe("receipt", "public-key")
			if code != 0 || !strings.HasPrefix(pem, "-----BEGIN PUBLIC KEY-----") {
				t.Fatalf("public-key: %d %s", code, pem)
			}
			dir := t.TempDir()
			pemFile := filepath.Join(dir, "receipt.pub")
			if err := os.WriteFile(pemFile, []byte(pem), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				jws, err := a.Privacy.Receipt(ctx, id)
				if err != nil {
					t.Fatalf("receipt %d: %v", id, err)
				}
				file := filepath.Join(dir, "receipt.jws")
				if err := os.WriteFile(file, []byte(jws), 0o600); err != nil {
					t.Fatal(err)
				}
				for _, args := range [][]string{{"receipt", "verify", file}, {"receipt", "verify", file, "--public-key", pemFile}} {
					out, code := exe(args...)
					if code != 0 || !strings.Contains(out, "receipt verified") || !strings.Contains(out, `"status": "complete"`) || strings.Contains(out, "example.com") {
						t.Fatalf("%v: %d %s", args, code, out)
					}
				}
				b := []byte(jws)
				b[len(b)-10] ^= 0x01
				if err := os.WriteFile(file, b, 0o600); err != nil {
					t.Fatal(err)
				}
				if out, code := exe("receipt", "verify", file, "--public-key", pemFile); code != 1 || !strings.Contains(out, "does not verify") {
					t.Fatalf("tampered receipt: %d %s", code, out)
				}
			}
			out, code := exe("audit", "verify")
			if code != 0 || !strings.Contains(out, "audit chain intact") {
				t.Fatalf("audit verify: %d %s", code, out)
			}
			conn := storetest.SQL(t, store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
			if err := conn.Exec(ctx, "UPDATE privacy_audit_chain SET line = 'edited' WHERE seq = 2"); err == nil {
				t.Fatal("the audit chain took an edit: it is append-only")
			}
			if err := conn.LiftAuditProtection(ctx); err != nil { // the tampering that follows gets past it
				t.Fatal(err)
			}
			if err := conn.Exec(ctx, "UPDATE privacy_audit_chain SET line = 'edited' WHERE seq = 2"); err != nil {
				t.Fatal(err)
			}
			if out, code := exe("audit", "verify"); code != 1 || !strings.Contains(out, "seq 2") {
				t.Fatalf("audit verify after an edit: %d %s", code, out)
			}
		})
	}
}
