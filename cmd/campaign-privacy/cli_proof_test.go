package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProofCommandsOnMissingData: the read-only proof commands,
// pointed at a data directory that holds no instance (CP_DATA_DIR unset in
// the operator's shell: the default ./data), must say so and create
// nothing. `receipt public-key` instead generates a new receipt signing
// key there and prints its public key (exit 0): a key that signed no
// receipt, handed to whoever checks them. `audit verify` creates an empty
// database and a receipt key, and fails with an internal SQL error.
func TestProofCommandsOnMissingData(t *testing.T) {
	for _, args := range [][]string{{"receipt", "public-key"}, {"audit", "verify"}} {
		dir := filepath.Join(t.TempDir(), "data")
		out, err := run(t, map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"}, "", args...)
		var created []string
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			created = append(created, e.Name())
		}
		if err == nil {
			t.Errorf("%q on a missing data directory: exit 0\n%s", args, out)
		} else if msg := errorText(err); strings.Contains(msg, "SQL logic error") || strings.Contains(msg, "no such table") {
			t.Errorf("%q on a missing data directory: no clear message: %s", args, msg)
		}
		if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
			t.Errorf("%q on a missing data directory created %s", args, strings.Join(created, ", "))
		}
	}
}
