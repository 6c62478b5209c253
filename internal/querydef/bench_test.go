package querydef

import (
	"testing"

	"github.com/beevik/etree"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// BenchmarkCompile: the status query clients poll with, compiled to a plan
// and rendered by the store to SQL.
func BenchmarkCompile(b *testing.B) {
	reg, err := schemas.Default()
	if err != nil {
		b.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromString(`<queryDef schema="nms:gdprRequest" operation="select" lineCount="10">
  <select><node expr="@id"/><node expr="@status"/><node expr="@urlFile"/><node expr="[namespace/@name]" alias="@namespaceName"/></select>
  <where><condition expr="@status IN (0, 1, 7) AND @reconciliationValue LIKE 'a%'"/><condition expr="@id &gt; 10" bool-operator="OR"/></where>
  <orderBy><node expr="@id" sortDesc="true"/></orderBy></queryDef>`); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		q, err := Compile(reg, doc.Root())
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := store.Render(store.Postgres, q.Plan); err != nil {
			b.Fatal(err)
		}
	}
}
