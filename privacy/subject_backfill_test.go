package privacy_test

import (
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// TestRequestsFromBefore0009AreFoundByValue: migration 0009 added
// subject_hash empty and only a new request fills it, so the DPO's search
// by value never found a request made before it — and once the cleanup
// blanks the value, nothing could. The start (Setup) fills the hash of
// each request whose value is still held; a purged one has nothing to
// hash and stays as it is.
func TestRequestsFromBefore0009AreFoundByValue(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		old := f.create(t, "defaultNamespace1", demodata.Email(1), privacy.TypeAccess, false)
		purged := f.create(t, "defaultNamespace1", demodata.Email(2), privacy.TypeAccess, false)
		if err := sql.Exec(f.ctx, "UPDATE privacy_requests SET subject_hash = NULL"); err != nil { // the 0009 shape
			t.Fatal(err)
		}
		if err := sql.Exec(f.ctx, "UPDATE privacy_requests SET reconciliation_value = '', purged_at = last_modified WHERE id = ?", purged); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.Setup(f.ctx); err != nil { // the start after the upgrade
			t.Fatal(err)
		}
		found, n, err := f.env.Privacy.Requests(f.ctx, operator, privacy.RequestQuery{Subject: demodata.Email(1), Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if n != 1 || len(found) != 1 || found[0].ID != old {
			t.Errorf("a search by value found %d request(s) %v; want request %d, made before migration 0009", n, found, old)
		}
		if h, err := sql.Int(f.ctx, "SELECT count(*) FROM privacy_requests WHERE id = ? AND subject_hash IS NULL", purged); err != nil || h != 1 {
			t.Errorf("the purged request's hash: %d row(s) still NULL (%v); it has no value to hash", h, err)
		}
	})
}
