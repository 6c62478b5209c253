package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
)

// TestUnknownSubcommandChangesNothing: a mistyped subcommand or
// workflow name is refused, but only after the command has opened the
// database: on a data directory with nothing in it yet (a typo in
// CP_DATA_DIR, or the default ./data in the wrong directory) it creates
// the SQLite database, migrates it and writes four new key files.
func TestUnknownSubcommandChangesNothing(t *testing.T) {
	for _, args := range [][]string{
		{"workflow", "run", "colectPrivacyRequests"},
		{"operator", "delete", "--login", "ana"},
		{"namespace", "remove", "--name", "x"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		_, err := run(t, map[string]string{"CP_DATA_DIR": dir, "CP_LOG_LEVEL": "warn"}, "", args...)
		if err == nil {
			t.Fatalf("%q succeeded", args)
		}
		if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
			ents, _ := os.ReadDir(dir)
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Errorf("%q (refused: %v) created %s: %s", args, errorText(err), dir, strings.Join(names, ", "))
		}
	}
}

// TestStrayArgumentsAreRefused: an argument that is not a flag
// stops Go's flag parsing, and the commands ignore what is left:
// `operator rights --login ana privacyRight` (the --right forgotten)
// exits 0 having taken every right away from ana, and
// `operator rights --login ana admin --right privacyRight` gives none
// either (--right after the stray word is never read).
func TestStrayArgumentsAreRefused(t *testing.T) {
	env := testEnv(t, "sqlite")
	if out, err := run(t, env, "pw 1\n", "operator", "create", "--login", "ana", "--password-stdin", "--right", "privacyRight"); err != nil {
		t.Fatalf("create: %v %s", err, out)
	}
	rights := func() string {
		t.Helper()
		db := storetest.SQL(t, store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
		b, err := db.Bytes(context.Background(), "SELECT rights FROM operators WHERE login = ?", "ana")
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	before := rights()
	if !strings.Contains(before, "privacyRight") {
		t.Fatalf("rights after create: %q", before)
	}
	for _, args := range [][]string{
		{"operator", "rights", "--login", "ana", "privacyRight"},
		{"operator", "rights", "--login", "ana", "admin", "--right", "privacyRight"},
	} {
		out, err := run(t, env, "", args...)
		if err == nil {
			t.Errorf("%q: exit 0 with a stray argument: %s", args, out)
		}
		if got := rights(); got != before {
			t.Errorf("%q changed ana's rights from %q to %q", args, before, got)
		}
	}
}

// TestNamespaceLabelControlCharacters: a namespace label with
// control characters (an escape sequence, a line break) is stored, and
// `namespace list` writes it raw to the terminal: the ESC sequence runs,
// and the line break prints a line that looks like another namespace.
func TestNamespaceLabelControlCharacters(t *testing.T) {
	env := testEnv(t, "sqlite")
	label := "Loyalty\x1b[2J\ndefaultNamespace9  Fake  nms:recipient  @email"
	_, err := run(t, env, "", "namespace", "create", "--name", "loyalty", "--label", label, "--key", "@account")
	db := storetest.SQL(t, store.Config{DatabaseURL: env["CP_DATABASE_URL"], DataDir: env["CP_DATA_DIR"]})
	n, qerr := db.Int(context.Background(), "SELECT COUNT(*) FROM privacy_namespaces WHERE name = ?", "loyalty")
	if qerr != nil {
		t.Fatal(qerr)
	}
	if err == nil || n != 0 {
		t.Errorf("a label with control characters: err=%v, %d row(s) stored", err, n)
	}
	out, _ := run(t, env, "", "namespace", "list")
	if strings.Contains(out, "\x1b") || regexp.MustCompile(`(?m)^defaultNamespace9`).MatchString(out) {
		t.Errorf("namespace list writes the control characters raw:\n%q", out)
	}
}
