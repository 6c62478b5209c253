package privacy_test

import (
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

var admin = &session.Caller{OperatorID: 1, Login: "admin", Rights: []string{session.RightAdmin}}

// write inserts a recipient through xtk:persist#Write, as an ACC client does.
func (f *fixture) write(t *testing.T, attrs map[string]string) {
	t.Helper()
	el := etree.NewElement("recipient")
	el.CreateAttr("xtkschema", "nms:recipient")
	el.CreateAttr("_operation", "insert")
	for k, v := range attrs {
		el.CreateAttr(k, v)
	}
	if err := persist.New(f.env.DB, f.env.Registry, nil).Write(f.ctx, el); err != nil {
		t.Fatal(err)
	}
}

// rows is the ground truth: a plain SQL count of the rows whose column
// equals value.
func (f *fixture) rows(t testing.TB, column, value string) int64 {
	t.Helper()
	n, err := f.env.DB.CountRows(f.ctx, "nms_recipient", column, value)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) createErr(ns, value string) error {
	_, err := f.env.Privacy.CreateRequestByName(f.ctx, operator, privacy.CreateRequest{
		NamespaceName: ns, ReconciliationValue: value, Type: privacy.TypeAccess, DownloadURL: "http://x/nms/gdpr.jssp?id=",
	})
	return err
}

// TestCanonicalWriteFoundAndErased: a client writes an e-mail decomposed
// (NFD), with a TAB, a soft hyphen and a zero-width space; the person asks
// with the NFC spelling, is found and erased. A last name stored raw by an
// earlier version (no Write canonicalisation) becomes findable when a
// namespace on it is created: its field is rewritten once.
func TestCanonicalWriteFoundAndErased(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		f.write(t, map[string]string{"email": "\tjo\u00adse\u0301@example.com\u200b ", "lastName": "Zoe\u0308quist"})
		if n := f.rows(t, "email", "josé@example.com"); n != 1 {
			t.Fatalf("Write stored the e-mail uncanonicalised (%d rows in NFC)", n)
		}
		if n := f.rows(t, "last_name", "Zoe\u0308quist"); n != 1 {
			t.Fatalf("a field no namespace reads is kept as written: %d", n)
		}
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9201), "last_name": "Bj\u00ado\u0308rk "}); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.CreateNamespace(f.ctx, admin, privacy.Namespace{Name: "byLastName", Label: "Last name",
			TargetSchema: "nms:recipient", ReconciliationKey: "@lastName"}); err != nil {
			t.Fatal(err)
		}
		if f.rows(t, "last_name", "Zoëquist") != 1 || f.rows(t, "last_name", "Björk") != 1 {
			t.Fatal("creating the namespace did not canonicalise its field")
		}
		del := f.create(t, "defaultNamespace1", "josé@example.com", privacy.TypeDelete, false)
		byName := f.create(t, "byLastName", "Björk", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		for _, id := range []int64{del, byName} {
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("request %d: %s", id, s)
			}
		}
		if f.rows(t, "email", "josé@example.com") != 0 || f.rows(t, "last_name", "Björk") != 0 || f.count(t, "nms_recipient") != 5 {
			t.Fatal("the subjects were not erased, or someone else was")
		}
	})
}

// TestEmailRule: stored "Ana@Example.COM" is not found by "ana@example.com"
// under exact (ACC); once the namespace has the email rule it is, by any
// case. Neither "%" nor an empty value ever matches.
func TestEmailRule(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		f.write(t, map[string]string{"email": "Ana@Example.COM"})
		exact := f.create(t, "defaultNamespace1", "ana@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, exact); s != privacy.StatusErrorDataNotFound {
			t.Fatalf("exact rule matched another case: %s", s)
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		if f.rows(t, "email", "ana@example.com") != 1 || f.rows(t, "email", "Ana@Example.COM") != 0 {
			t.Fatal("the rule change did not rewrite the stored field")
		}
		f.write(t, map[string]string{"email": "BEA@Example.com"})
		if f.rows(t, "email", "bea@example.com") != 1 {
			t.Fatal("Write under the email rule did not case-fold")
		}
		a := f.create(t, "defaultNamespace1", "ANA@example.com", privacy.TypeAccess, false)
		b := f.create(t, "defaultNamespace1", "bea@EXAMPLE.com", privacy.TypeAccess, false)
		pct := f.create(t, "defaultNamespace1", "%@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		for _, id := range []int64{a, b} {
			if s := f.status(t, id); s != privacy.StatusComplete {
				t.Fatalf("request %d under the email rule: %s", id, s)
			}
			if doc := f.export(t, id); len(doc) == 0 {
				t.Fatal("empty export")
			}
		}
		if s := f.status(t, pct); s != privacy.StatusErrorDataNotFound {
			t.Fatalf("%%@example.com matched: %s", s)
		}
		for _, v := range []string{"", "%", " \u200b"} {
			if err := f.createErr("defaultNamespace1", v); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%q: %v, want Invalid", v, err)
			}
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: "fuzzy"}); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("unknown rule: %v", err)
		}
	})
}

// TestPhoneRule: under the phone rule with region US, "+15550109999" finds
// a stored "+1 (555) 010-9999" (written before and after the rule was set);
// a value that is not a phone number is stored and asked for as its text,
// so a request reaches it ("never less"); an empty or wildcard-only value
// is Invalid at CreateRequestByName.
func TestPhoneRule(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		f.write(t, map[string]string{"email": "old@example.com", "phone": "+1 (555) 010-9999"})
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: canon.Phone, DefaultRegion: "us"}); err != nil {
			t.Fatal(err)
		}
		f.write(t, map[string]string{"email": "new@example.com", "phone": "555.010.8888"})
		f.write(t, map[string]string{"email": "text@example.com", "phone": "ask\u00a0the desk"})
		f.write(t, map[string]string{"email": "intl@example.com", "phone": "0049 170 1234567"})
		if f.rows(t, "phone", "+15550109999") != 1 || f.rows(t, "phone", "+15550108888") != 1 {
			t.Fatal("phones not stored in E.164")
		}
		a := f.create(t, "defaultNamespace3", "+15550109999", privacy.TypeAccess, false)
		b := f.create(t, "defaultNamespace3", "(555) 010-8888", privacy.TypeAccess, false)
		none := f.create(t, "defaultNamespace3", "+15550107777", privacy.TypeAccess, false)
		text := f.create(t, "defaultNamespace3", "ask the desk", privacy.TypeAccess, false)
		intl := f.create(t, "defaultNamespace3", "+49 170 1234567", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		for id, want := range map[int64]privacy.Status{a: privacy.StatusComplete, b: privacy.StatusComplete, none: privacy.StatusErrorDataNotFound,
			text: privacy.StatusComplete, intl: privacy.StatusComplete} {
			if got := f.status(t, id); got != want {
				t.Errorf("request %d: %s, want %s", id, got, want)
			}
		}
		for _, v := range []string{"%", "%%_", ""} {
			if err := f.createErr("defaultNamespace3", v); apperr.CodeOf(err) != apperr.Invalid {
				t.Errorf("%q: %v, want Invalid", v, err)
			}
		}
	})
}

// TestUpgradeRewritesOnce: data written by an earlier version (raw NFD,
// soft hyphen, trailing space) in a namespace not yet canonicalised
// (privacy_namespaces.canonical = 0, as migration 0007 leaves it) is
// rewritten by the next start's Setup, and found; WriteCollection stores
// canonical values too.
func TestUpgradeRewritesOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9301), "email": "re\u00adne\u0301@example.com "}); err != nil {
			t.Fatal(err)
		}
		ns, err := f.env.DB.FindNamespaceByName(f.ctx, "defaultNamespace1")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.env.DB.SetNamespaceCanonical(f.ctx, ns.ID, 0); err != nil {
			t.Fatal(err)
		}
		if f.rows(t, "email", "rené@example.com") != 0 {
			t.Fatal("fixture: the legacy row is already canonical")
		}
		if err := f.env.Privacy.Setup(f.ctx); err != nil {
			t.Fatal(err)
		}
		if f.rows(t, "email", "rené@example.com") != 1 {
			t.Fatal("Setup did not rewrite the legacy value")
		}
		if ns, _ = f.env.DB.FindNamespaceByName(f.ctx, "defaultNamespace1"); ns.Canonical != canon.Version {
			t.Fatalf("canonical = %d after Setup", ns.Canonical)
		}
		coll := etree.NewElement("recipient-collection")
		coll.CreateAttr("xtkschema", "nms:recipient")
		for _, e := range []string{"lu\u0301cia@example.com", " \u200bmarc@example.com"} {
			c := coll.CreateElement("recipient")
			c.CreateAttr("_operation", "insert")
			c.CreateAttr("email", e)
		}
		if err := persist.New(f.env.DB, f.env.Registry, nil).WriteCollection(f.ctx, coll); err != nil {
			t.Fatal(err)
		}
		if f.rows(t, "email", "lúcia@example.com") != 1 || f.rows(t, "email", "marc@example.com") != 1 {
			t.Fatal("WriteCollection stored values uncanonicalised")
		}
		id := f.create(t, "defaultNamespace1", "rené@example.com", privacy.TypeAccess, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("legacy subject after the upgrade: %s", s)
		}
	})
}

// TestRuleChangeBesideADelete: while a namespace update's rewrite of the
// stored field is under way (the namespace not yet at the canon version),
// a delete does not look the subject up — some rows would still be in the
// old form — and is retried; once the rewrite is done, the retry erases
// the subject. A check that reads a namespace changed since its lookup
// fails the same way (store test: TestRemainCheckNamespace). Counts by
// plain SQL.
func TestRuleChangeBesideADelete(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		f.write(t, map[string]string{"email": "Cat@Example.com"})
		id := f.create(t, "defaultNamespace1", "Cat@Example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		if s := f.status(t, id); s != privacy.StatusDeletePending {
			t.Fatalf("after the collect: %s", s)
		}
		// An update to the email rule committed; its rewrite has not run.
		if err := sql.Exec(f.ctx, "UPDATE privacy_namespaces SET match_rule = 'email', canonical = 0 WHERE name = 'defaultNamespace1'"); err != nil {
			t.Fatal(err)
		}
		f.run(t, privacy.Delete)
		r, err := f.env.DB.FindRequestByID(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if privacy.Status(r.Status) != privacy.StatusDeletePending || r.RetryCount != 1 || !strings.Contains(r.Audit, "match rule changed") {
			t.Fatalf("delete beside a rewrite: status %s, retries %d, audit:\n%s", privacy.Status(r.Status), r.RetryCount, r.Audit)
		}
		if n, err := sql.Int(f.ctx, "SELECT COUNT(*) FROM nms_recipient WHERE email = ?", "Cat@Example.com"); err != nil || n != 1 {
			t.Fatalf("the subject's row: %d (%v), want it untouched", n, err)
		}
		// The rewrite finishes (the update again, through the service).
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		f.env.Clock.Advance(24 * time.Hour)
		f.run(t, privacy.Delete)
		if s := f.status(t, id); s != privacy.StatusComplete {
			t.Fatalf("the retry after the rewrite: %s", s)
		}
		if n, err := sql.Int(f.ctx, "SELECT COUNT(*) FROM nms_recipient WHERE lower(email) = ?", "cat@example.com"); err != nil || n != 0 {
			t.Fatalf("%d row(s) of the subject remain (%v)", n, err)
		}
	})
}
