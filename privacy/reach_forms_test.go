package privacy_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
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

// TestRewriteKeepsInvalidUTF8PeopleApart: README (collect) names
// stored values that are not valid UTF-8 "written by other tools with
// plain SQL" (a Latin-1 tool on SQLite): the file keeps their bytes, and
// so must the field's rewrite at a rule change (or at a new namespace, or
// the start after an upgrade). Cleaning such bytes as text turned each
// invalid byte into U+FFFD: "jos\xe9@…" (josé in Latin-1) and "jos\xe8@…"
// (josè) were both rewritten to "jos\uFFFD@…", two people's personal data
// overwritten with one value, and from then on one subject: a delete for
// that value erased both (SECURITY-CATALOGUE J68). The bytes stay as they
// are, and an exact request for them reaches that person only.
func TestRewriteKeepsInvalidUTF8PeopleApart(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		if dialect != "sqlite" {
			t.Skip("PostgreSQL's UTF8 databases refuse invalid UTF-8: only SQLite can hold such a value")
		}
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		for id, email := range map[int64]string{9901: "jos\xe9@example.com", 9902: "jos\xe8@example.com"} {
			if err := sql.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": id, "email": email, "last_name": "Latin1"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		distinct, err := sql.Int(f.ctx, "SELECT count(DISTINCT email) FROM nms_recipient WHERE last_name = 'Latin1'")
		if err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace1", "jos\ufffd@example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = 'Latin1'")
		if err != nil {
			t.Fatal(err)
		}
		if distinct != 2 || left == 0 {
			t.Fatalf("after the rule change's rewrite the two people's e-mails are %d distinct value(s); one delete request (%s) left %d of the 2 rows",
				distinct, f.status(t, id), left)
		}
		// The stored bytes, asked for exactly: that person, not the other.
		exact := f.create(t, "defaultNamespace1", "jos\xe9@example.com", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		for id, want := range map[int64]int64{9901: 0, 9902: 1} {
			if n, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", id); err != nil || n != want {
				t.Fatalf("after the exact request for jos\\xe9@… (%s): recipient %d has %d row(s) (%v), want %d", f.status(t, exact), id, n, err, want)
			}
		}
	})
}

// TestInvisibleCharactersOut: README "Every stored form is reachable":
// the canonical form takes "invisible characters out" (canon.Text:
// "never what tells two people apart"), every Unicode default-ignorable
// code point, not only the format characters (Cf): the combining grapheme
// joiner U+034F, the variation selector U+FE0F (pasted with text copied
// from a page or a chat) and the Mongolian free variation selector U+180B
// are as invisible as a zero-width space. Stored as written, they were
// reached by no request for the address as the person types it, and
// their deletes ended "data not found" with the rows left
// (SECURITY-CATALOGUE J64).
func TestInvisibleCharactersOut(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		stored := map[string]string{
			"cgj@example.com": "cg\u034fj@example.com",
			"vs@example.com":  "vs\ufe0f@example.com",
			"fvs@example.com": "fv\u180bs@example.com",
		}
		var ids []int64
		for typed, raw := range stored {
			f.write(t, map[string]string{"email": raw, "lastName": "Invisible"})
			ids = append(ids, f.create(t, "defaultNamespace1", typed, privacy.TypeDelete, false))
		}
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = 'Invisible'")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			var st []string
			for _, id := range ids {
				st = append(st, f.status(t, id).String())
			}
			t.Fatalf("%d of 3 people stored with an invisible character are left; their deletes: %v", left, st)
		}
	})
}

// TestPhoneExtensionDigitsReached: the phone rule reads the number's
// digits in any script (full-width "０６…" from a Japanese IME is the same
// number as "06…"), and the extension's too: "+1 650-253-0000 ext. １２３"
// was stored as "+16502530000;ext=１２３", where a request for
// "+1 650-253-0000 ext. 123" (or its E.164 form) did not reach it; the
// person's delete ended "data not found" with their row left
// (SECURITY-CATALOGUE J65).
func TestPhoneExtensionDigitsReached(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: canon.Phone, DefaultRegion: "US"}); err != nil {
			t.Fatal(err)
		}
		f.write(t, map[string]string{"email": "fw@example.com", "phone": "+1 650-253-0000 ext. １２３"})
		id := f.create(t, "defaultNamespace3", "+1 650-253-0000 ext. 123", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", "fw@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("delete for extension 123 is %s; the person stored with the extension in full-width digits is still there", f.status(t, id))
		}
	})
}

// TestEmailRuleReachesPunycodeDomain: under the email rule, an address
// on an internationalised domain is one mailbox whether the domain is
// written in Unicode ("bücher.de", what the person types) or in its ASCII
// (punycode) form ("xn--bcher-kva.de", what many systems and older mail
// software store). A rule that only lower-cased left a stored
// "ana@xn--bcher-kva.de" out of reach of a request for "ana@bücher.de"
// (and the reverse): the delete ended "data not found" with the person's
// row left (SECURITY-CATALOGUE J66).
func TestEmailRuleReachesPunycodeDomain(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace1", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		f.write(t, map[string]string{"email": "Ana@XN--BCHER-KVA.de", "lastName": "Punycode"})
		id := f.create(t, "defaultNamespace1", "ana@bücher.de", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = 'Punycode'")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("delete for ana@bücher.de is %s; the same mailbox stored as ana@xn--bcher-kva.de is still there", f.status(t, id))
		}
	})
}

// TestPhoneSlashExtensionsAreTwoPeople: J19 made an extension part of
// the phone rule's canonical value ("two people on one switchboard number
// are two values"), but an extension written after a slash ("650 253 0000
// / x123", as libphonenumber's second-number rule reads "/ x") was cut off
// by the parser: both people on the switchboard became the bare number
// "+16502530000", and a delete for the person at extension 123 erased the
// person at extension 456 too (SECURITY-CATALOGUE J67). A value the
// parser does not read in full is not one phone number: it keeps its
// text, and a request for that text reaches that person only.
func TestPhoneSlashExtensionsAreTwoPeople(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		for id, phone := range map[int64]string{9801: "650 253 0000 / x123", 9802: "650 253 0000 / x456"} {
			if err := sql.InsertRow(f.ctx, "nms_recipient", map[string]any{"id": id, "email": "slash" + itoa(id) + "@example.com", "phone": phone}); err != nil {
				t.Fatal(err)
			}
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, privacy.Namespace{Name: "defaultNamespace3", MatchRule: canon.Phone, DefaultRegion: "US"}); err != nil {
			t.Fatal(err)
		}
		id := f.create(t, "defaultNamespace3", "650 253 0000 / x123", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		other, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = 9802")
		if err != nil {
			t.Fatal(err)
		}
		if other != 1 {
			t.Fatalf("the delete for \"650 253 0000 / x123\" (%s) erased the recipient at \"/ x456\"", f.status(t, id))
		}
		if mine, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = 9801"); err != nil || mine != 0 {
			t.Fatalf("the delete for \"650 253 0000 / x123\" (%s) left its own recipient (%d row, %v)", f.status(t, id), mine, err)
		}
	})
}

// TestNamespaceCreatedDuringWriteStaysReachable: README "Every stored
// form is reachable": values written through xtk:persist#Write are stored
// in their namespace rule's canonical form, and a namespace created later
// rewrites its field ("The field may hold data written before the
// namespace existed"). J24 made a Write re-check the namespaces it read,
// but only those that already existed: a Write that read the namespaces
// just before an administrator created one on a field it writes (here
// @lastName) built its value raw (NFD, trailing space), the creation's
// rewrite ran before the Write committed, and the Write then stored the
// raw form after the rewrite was over, where no request reaches it: the
// person's delete completed as "data not found" and their row stayed
// (SECURITY-CATALOGUE J60). The Write now sees the new namespace and is
// built again under its rule.
func TestNamespaceCreatedDuringWriteStaysReachable(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		sql := storetest.SQLOf(t, f.env.DB)
		var once sync.Once
		var createErr error
		// persist reads the clock after it read the rules and before its
		// transaction: the administrator's create happens exactly there.
		now := func() time.Time {
			once.Do(func() {
				createErr = f.env.Privacy.CreateNamespace(f.ctx, admin, privacy.Namespace{Name: "byLastName", Label: "Last name",
					TargetSchema: "nms:recipient", ReconciliationKey: "@lastName"})
			})
			return time.Now()
		}
		el := etree.NewElement("recipient")
		el.CreateAttr("xtkschema", "nms:recipient")
		el.CreateAttr("_operation", "insert")
		el.CreateAttr("email", "zoe.race@example.com")
		el.CreateAttr("lastName", "Zoe\u0308quist ") // NFD, trailing space
		if err := persist.New(f.env.DB, f.env.Registry, now).Write(f.ctx, el); err != nil {
			t.Fatal(err)
		}
		if createErr != nil {
			t.Fatal(createErr)
		}
		id := f.create(t, "byLastName", "Zoëquist", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE email = ?", "zoe.race@example.com")
		if err != nil {
			t.Fatal(err)
		}
		canonical, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE last_name = ?", "Zoëquist")
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("delete request for \"Zoëquist\" is %s; the person's row is still there (%d row(s), %d in canonical form): "+
				"a Write that read the namespaces before byLastName was created stored its value raw after the field's rewrite",
				f.status(t, id), left, canonical)
		}
	})
}

// memberSchema is a custom subject table whose mobile field holds French
// national numbers, sized for them (10 digits), as many CRM imports are.
var memberSchema = fstest.MapFS{"cus_member.xml": {Data: []byte(`<?xml version="1.0" encoding="UTF-8"?>
<schema namespace="cus" name="member" label="Members">
  <element name="member" autopk="true" label="Members">
    <attribute name="name" type="string" length="64" label="Name"/>
    <attribute name="mobile" type="string" length="10" label="Mobile"/>
  </element>
</schema>`)}}

// TestCanonicalFormLongerThanFieldStaysReachable: a custom namespace with
// the phone rule (region FR) on a 10-character field of national numbers
// ("0612345678"). The canonical form "+33612345678" is 12 characters: the
// field's rewrite keeps such a value as it was (truncating could make it
// another person's), and CheckReconciliationValue refuses every spelling
// of the number because its canonical form is "longer than the 10
// characters of the field". The namespace was created without a word, and
// the person's stored value was reachable by no request at all
// (SECURITY-CATALOGUE J61). No form of the request can reach a value the
// field cannot hold in canonical form, so the configuration is refused,
// saying why, on create and on update; the namespace stays usable under a
// rule that fits, and reaches that person only.
func TestCanonicalFormLongerThanFieldStaysReachable(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{Schemas: memberSchema})
		sql := storetest.SQLOf(t, f.env.DB)
		// Written before the namespace existed (an import, an earlier Write).
		for id, m := range map[int64][2]string{9701: {"Mina", "0612345678"}, 9702: {"Other", "0699999999"}} {
			if err := sql.InsertRow(f.ctx, "cus_member", map[string]any{"id": id, "name": m[0], "mobile": m[1]}); err != nil {
				t.Fatal(err)
			}
		}
		phone := privacy.Namespace{Name: "memberMobile", Label: "Member - mobile",
			TargetSchema: "cus:member", ReconciliationKey: "@mobile", MatchRule: canon.Phone, DefaultRegion: "FR"}
		err := f.env.Privacy.CreateNamespace(f.ctx, admin, phone)
		if apperr.CodeOf(err) != apperr.Invalid || !strings.Contains(apperr.MessageOf(err), "2 stored value(s) of @mobile would be longer than the field's 10 characters") {
			t.Fatalf("a phone rule whose E.164 form the 10-character field cannot hold: %v, want Invalid naming the field and the count", err)
		}
		if _, err := f.env.DB.FindNamespaceByName(f.ctx, "memberMobile"); apperr.CodeOf(err) != apperr.NotFound {
			t.Fatalf("the refused namespace exists: %v", err)
		}
		// The same field under the exact rule is accepted; changing it to
		// the phone rule is refused the same way and changes nothing.
		exact := phone
		exact.MatchRule, exact.DefaultRegion = canon.Exact, ""
		if err := f.env.Privacy.CreateNamespace(f.ctx, admin, exact); err != nil {
			t.Fatal(err)
		}
		if err := f.env.Privacy.UpdateNamespace(f.ctx, admin, phone); apperr.CodeOf(err) != apperr.Invalid {
			t.Fatalf("update to the phone rule: %v, want Invalid", err)
		}
		if ns, err := f.env.DB.FindNamespaceByName(f.ctx, "memberMobile"); err != nil || ns.MatchRule != canon.Exact {
			t.Fatalf("after the refused update: %+v, %v", ns, err)
		}
		id := f.create(t, "memberMobile", "0612345678", privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		for member, want := range map[int64]int64{9701: 0, 9702: 1} {
			if n, err := sql.Int(f.ctx, "SELECT count(*) FROM cus_member WHERE id = ?", member); err != nil || n != want {
				t.Fatalf("after the delete for 0612345678 (%s): member %d has %d row(s) (%v), want %d", f.status(t, id), member, n, err, want)
			}
		}
	})
}

// TestDemoDataStoredInCanonicalForm: `campaign-privacy demo-data`
// inserts recipients straight into the tables, bypassing Write's
// canonicalisation, after the namespaces' rules and rewrites are in place,
// so nothing rewrites its rows later. With a custom namespace on @account
// under the email rule (account numbers matched case-insensitively), the
// generated "ACC-00000002" was stored in upper case while every request
// is lower-cased: no request for that account reached the recipient, and
// its delete ended "data not found" with the rows left (the demo is also
// what a team tries the product with before going live;
// SECURITY-CATALOGUE J63). The namespaced fields are generated in their
// namespaces' canonical form, as Write stores them.
func TestDemoDataStoredInCanonicalForm(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		env := servertest.New(t, dialect, servertest.Options{})
		f := &fixture{env: env, ctx: context.Background()}
		if err := f.env.Privacy.CreateNamespace(f.ctx, admin, privacy.Namespace{Name: "byAccount", Label: "Account",
			TargetSchema: "nms:recipient", ReconciliationKey: "@account", MatchRule: canon.Email}); err != nil {
			t.Fatal(err)
		}
		g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 7}
		if _, _, err := g.Generate(f.ctx, 3, nil); err != nil {
			t.Fatal(err)
		}
		sql := storetest.SQLOf(t, f.env.DB)
		rcp := recipientID(t, f, 2)
		var account string
		{
			b, err := sql.Bytes(f.ctx, "SELECT account FROM nms_recipient WHERE id = ?", rcp)
			if err != nil {
				t.Fatal(err)
			}
			account = string(b)
		}
		id := f.create(t, "byAccount", account, privacy.TypeDelete, false)
		f.run(t, privacy.Collect)
		f.run(t, privacy.Delete)
		left, err := sql.Int(f.ctx, "SELECT count(*) FROM nms_recipient WHERE id = ?", rcp)
		if err != nil {
			t.Fatal(err)
		}
		if left != 0 {
			t.Fatalf("delete for the demo account %q is %s; the recipient is still there (its account stored as generated, not in the email rule's form)",
				account, f.status(t, id))
		}
	})
}
