package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestDatabaseURLPasswordNotInErrors: CP_DATABASE_URL is a secret
// setting ("Secret settings never appear in an error message"), yet when
// the URL does not parse, the error the command prints carries the
// password whenever it is written in one of libpq's other accepted
// spellings: the password query parameter of a URL, or "password = x"
// with spaces in the keyword/value form.
func TestDatabaseURLPasswordNotInErrors(t *testing.T) {
	const secret = "Sup3rSecretPW"
	for _, url := range []string{
		"postgres://alice@127.0.0.1/db?password=" + secret + "&sslmode=bogus",
		"postgres://alice@127.0.0.1:5432/db?password=" + secret + "&connect_timeout=soon",
		"host=127.0.0.1 password = " + secret + " port=x",
	} {
		env := map[string]string{"CP_DATA_DIR": filepath.Join(t.TempDir(), "data"), "CP_DATABASE_URL": url}
		out, err := run(t, env, "", "migrate")
		if err == nil {
			t.Fatalf("%s: migrate succeeded", url)
		}
		if msg := errorText(err); strings.Contains(msg, secret) || strings.Contains(out, secret) {
			t.Errorf("the database password is in the error of CP_DATABASE_URL=%q:\n%s", url, msg)
		}
	}
}
