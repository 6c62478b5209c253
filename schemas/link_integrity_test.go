package schemas

import (
	"strings"
	"testing"
	"testing/fstest"
)

// TestOwningIntegrityRefused: integrity="own" (or "owncopy") on a link's
// own side says, in ACC, that deleting the row deletes the target: a
// recipient's loyalty card goes with the recipient. The registry read it
// and nothing followed it, so the card was neither in the access file nor
// deleted by a complete delete, and the coverage report did not name it.
// The privacy traversal follows owning links from the owned row to its
// owner (revIntegrity), so such a link is refused at start, naming the
// file, the link and the link to declare instead.
func TestOwningIntegrityRefused(t *testing.T) {
	card := `<schema namespace="cus" name="loyaltyCard">
  <element name="loyaltyCard" autopk="true"><attribute name="holderName" type="string" length="128"/></element>
</schema>`
	for _, integrity := range []string{IntegrityOwn, IntegrityOwnCopy} {
		t.Run(integrity, func(t *testing.T) {
			_, err := New(fstest.MapFS{
				"cus_loyaltyCard.xml": {Data: []byte(card)},
				"cus_recipient.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient">
    <element name="loyaltyCard" type="link" target="cus:loyaltyCard" integrity="` + integrity + `"/>
  </element>
</schema>`)},
			})
			if err == nil {
				t.Fatal("the schema loaded")
			}
			for _, w := range []string{"cus_recipient.xml:3:", `link "loyaltyCard"`, `integrity="` + integrity + `"`, "not supported", `revIntegrity="own"`, "cus:loyaltyCard"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nlacks %s", err, w)
				}
			}
		})
	}
	// The other integrities change nothing a privacy request does.
	for _, integrity := range []string{IntegrityNormal, IntegrityNeutral, IntegrityDefine} {
		if _, err := New(fstest.MapFS{
			"cus_loyaltyCard.xml": {Data: []byte(card)},
			"cus_recipient.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient"><element name="loyaltyCard" type="link" target="cus:loyaltyCard" integrity="` + integrity + `"/></element>
</schema>`)},
		}); err != nil {
			t.Errorf("integrity=%q: %v", integrity, err)
		}
	}
}
