package server_test

import (
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestReceiptThroughQueryDef: a finished request's erasure receipt is
// readable through xtk:queryDef as the attribute @receipt of
// nms:gdprRequest, and verifies with the instance's public key.
func TestReceiptThroughQueryDef(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		receiptThroughQueryDef(t, dialect, nil)
	})
}

// TestReceiptIssuedBefore0011ThroughQueryDef: a receipt issued at
// migrations 0008 to 0010 was stored in privacy_receipts only, and 0011
// added privacy_requests.receipt empty: queryDef's @receipt never showed
// it. Migration 0021 copies it onto the request row.
func TestReceiptIssuedBefore0011ThroughQueryDef(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		receiptThroughQueryDef(t, dialect, func(ctx context.Context, env *servertest.Env) {
			sql := storetest.SQLOf(t, env.DB)
			for _, stmt := range []string{
				"UPDATE privacy_requests SET receipt = NULL", // as 0011 left a receipt issued before it
				"DELETE FROM schema_migrations WHERE version >= 21",
			} {
				if err := sql.Exec(ctx, stmt); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := env.DB.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// receiptThroughQueryDef finishes a delete with a receipt, calls upgrade
// (if set), and reads the receipt back as @receipt through xtk:queryDef.
func receiptThroughQueryDef(t *testing.T, dialect string, upgrade func(context.Context, *servertest.Env)) {
	key := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	env := servertest.New(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) { c.ReceiptKey, c.ReceiptIssuer = key, "test" }})
	ctx := context.Background()
	g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 5}
	if _, _, err := g.Generate(ctx, 2, nil); err != nil {
		t.Fatal(err)
	}
	env.Operator(t, "ana", "ana password", session.RightPrivacy)
	op := &session.Caller{OperatorID: 1, Login: "ana", Rights: []string{session.RightPrivacy}}
	id, err := env.Privacy.CreateRequestByName(ctx, op, privacy.CreateRequest{NamespaceName: "defaultNamespace1",
		ReconciliationValue: demodata.Email(1), Type: privacy.TypeDelete, DownloadURL: "http://x/nms/gdpr.jssp?id="})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Privacy.Run(ctx, "all"); err != nil {
		t.Fatal(err)
	}
	if upgrade != nil {
		upgrade(ctx, env)
	}
	token, _ := env.Logon(t, "ana", "ana password")
	doc := queryResult(t, env, token, `<queryDef schema="nms:gdprRequest" operation="get"><select><node expr="@receipt"/></select><where><condition expr="@id = `+
		strconv.FormatInt(id, 10)+`"/></where></queryDef>`)
	jws := servertest.Between(doc, `receipt="`, `"`)
	if strings.Count(jws, ".") != 2 {
		t.Fatalf("no receipt in %s", doc)
	}
	c, err := privacy.VerifyReceipt(jws, []ed25519.PublicKey{key.Public().(ed25519.PublicKey)})
	if err != nil || c.RequestID != id || c.Status != "complete" {
		t.Fatalf("receipt %+v %v", c, err)
	}
}
