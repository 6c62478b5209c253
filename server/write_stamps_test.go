package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// TestCreatedAndLastModifiedAreTheServers: server/README.md says of
// Write: "`created` / `lastModified` are set by the server". A caller's
// created or lastModified must not reach the row, on insert or on update.
func TestCreatedAndLastModifiedAreTheServers(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		env.Operator(t, "ana", "correct horse", session.RightPrivacy)
		token, _ := env.Logon(t, "ana", "correct horse")
		write := func(doc string) {
			t.Helper()
			_, body := env.Post(t, "xtk:session#Write", writeCall("Write", token, doc))
			mustContain(t, body, "<WriteResponse")
		}
		ctx := context.Background()
		conn := storetest.SQLOf(t, env.DB)
		year := func(col string) int64 {
			t.Helper()
			q := "SELECT COUNT(*) FROM nms_recipient WHERE email = 'ts@example.com' AND CAST(" + col + " AS TEXT) LIKE '1999%'"
			n, err := conn.Int(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		write(`<recipient xtkschema="nms:recipient" _operation="insert" email="ts@example.com" created="1999-01-01 00:00:00.000Z" lastModified="1999-01-01 00:00:00.000Z"/>`)
		var bad []string
		if year("created") != 0 {
			bad = append(bad, "insert stored the caller's @created")
		}
		if year("last_modified") != 0 {
			bad = append(bad, "insert stored the caller's @lastModified")
		}
		write(`<recipient xtkschema="nms:recipient" _operation="insert" email="ts2@example.com"/>`)
		write(`<recipient xtkschema="nms:recipient" _operation="update" _key="@email" email="ts@example.com" firstName="X" created="1999-06-01 00:00:00.000Z" lastModified="1999-06-01 00:00:00.000Z"/>`)
		if year("created") != 0 {
			bad = append(bad, "update rewrote @created with the caller's value")
		}
		if year("last_modified") != 0 {
			bad = append(bad, "update stored the caller's @lastModified")
		}
		if len(bad) > 0 {
			t.Fatal(strings.Join(bad, "; "))
		}
	})
}
