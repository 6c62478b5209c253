package store_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// TestEveryServiceTableIsReserved: every table the migrations create is
// one no custom schema may map (schemas.ServiceTable): a custom schema on
// the operators table would let ExecuteQuery read password hashes.
func TestEveryServiceTableIsReserved(t *testing.T) {
	create := regexp.MustCompile(`(?i)CREATE TABLE (?:IF NOT EXISTS )?([a-z_0-9]+)`)
	for _, dialect := range []string{"postgres", "sqlite"} {
		files, err := filepath.Glob(filepath.Join("migrations", dialect, "*.sql"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no migrations for %s: %v", dialect, err)
		}
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range create.FindAllStringSubmatch(string(b), -1) {
				n++
				if !schemas.ServiceTable(m[1]) {
					t.Errorf("%s creates %s, which a custom schema may map", f, m[1])
				}
			}
		}
		if n < 10 {
			t.Fatalf("%s: only %d tables found", dialect, n)
		}
	}
}
