package server_test

import (
	"context"
	"crypto/ed25519"
	"strconv"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestReceiptThroughQueryDef: a finished request's erasure receipt is
// readable through xtk:queryDef as the attribute @receipt of
// nms:gdprRequest, and verifies with the instance's public key.
func TestReceiptThroughQueryDef(t *testing.T) {
	key := ed25519.NewKeyFromSeed([]byte("0123456789abcdef0123456789abcdef"))
	eachStore(t, func(t *testing.T, dialect string) {
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
	})
}
