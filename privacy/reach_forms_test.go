package privacy_test

import (
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// Every stored form of a value is reachable, and a value reaches nothing
// more (README "Every stored form is reachable"): the rewrite of a field
// reads every row, a Write never stores a form the field's namespaces do
// not give it, and the canonical form removes what is invisible and
// nothing that tells two people apart. Every count is plain SQL.

// TestRuleChangeRewritesRowsWithNegativeIDs: README "Every stored
// form is reachable": a rule change (or a new namespace, or the start
// after an upgrade) rewrites the field "at once", every row of it. A
// rewrite that paged from id 0 upwards ("WHERE id > 0") never rewrote a
// row whose id is zero or negative. Such ids are what Adobe Campaign
// itself hands out once its 32-bit sequence wraps, so recipients migrated
// from ACC, or inserted by another system, carry them. Here a recipient
// stored as "Neg.Ative@Example.COM" with id -7 must be lower-cased by the
// switch to the email rule (every request is), or the person's delete
// ends "data not found" with their row left (SECURITY-CATALOGUE J62).
func TestRuleChangeRewritesRowsWithNegativeIDs(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		if err := sql.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(-7), "email": "Neg.Ative@Example.COM", "last_name": "Negative"}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "Neg.Ative@Example.COM", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = -7")
		if err != nil {
			t.Fatal(err)
		}
		raw, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", "Neg.Ative@Example.COM")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("delete request is %s; recipient -7 is still there (%d row still stored in mixed case): the rule change's rewrite skipped it",
				f.status(t, id), raw)
		}
	})
}
