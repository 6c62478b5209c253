package main

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite README.md's settings table from the settings table")

//go:generate go test -run TestREADMESettingsTable -update .

const (
	tableStart = "<!-- settings table: generated from cmd/campaign-privacy/settings.go by `go generate ./cmd/campaign-privacy`; edit it there -->\n"
	tableEnd   = "<!-- end of the settings table -->\n"
)

// TestREADMESettingsTable keeps README.md's settings table equal to the
// settings table (-update rewrites it).
func TestREADMESettingsTable(t *testing.T) {
	const path = "../../README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, tableStart), strings.Index(readme, tableEnd)
	if i < 0 || j < i {
		t.Fatalf("README.md has no settings table between %q and %q", tableStart, tableEnd)
	}
	want := readme[:i+len(tableStart)] + settingsMarkdown() + readme[j:]
	if want == readme {
		return
	}
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("README.md's settings table differs from settings.go: run `go generate ./cmd/campaign-privacy`")
}

// TestSettingsTable checks the table itself: every default parses, names
// are unique, and --help names every setting.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, st := range table {
		if st.Flag == "" || !strings.HasPrefix(st.Env, "CP_") || st.Help == "" || st.Set == nil {
			t.Errorf("incomplete setting %+v", st)
		}
		if seen[st.Flag] || seen[st.Env] {
			t.Errorf("%s/%s appears twice", st.Flag, st.Env)
		}
		seen[st.Flag], seen[st.Env] = true, true
		if err := st.Set(&settings{}, st.Default); err != nil {
			t.Errorf("%s: the default %q does not parse: %v", st.Env, st.Default, err)
		}
		if !strings.Contains(usage, "--"+st.Flag) || !strings.Contains(usage, st.Env) {
			t.Errorf("--help does not name %s", st.Env)
		}
	}
}
