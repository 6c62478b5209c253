package store

import (
	"slices"
	"testing"
)

// TestSplitSQL: a migration file's statements, a PostgreSQL function's
// dollar-quoted body and a SQLite trigger's BEGIN … END kept whole — one
// with a CASE … END inside and a ";" in a string, a TEMP one.
func TestSplitSQL(t *testing.T) {
	in := `-- a comment
CREATE TABLE a (x INTEGER);
CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'no';
END
$$;
CREATE TRIGGER t BEFORE DELETE ON a
BEGIN SELECT RAISE(ABORT, 'no'); SELECT 1; END;
CREATE TRIGGER u BEFORE TRUNCATE ON a FOR EACH STATEMENT EXECUTE FUNCTION f();
CREATE TRIGGER v BEFORE UPDATE ON a
BEGIN SELECT CASE WHEN new.x < 0 THEN RAISE(ABORT, 'an END; here') END; END;
CREATE TEMP TRIGGER w BEFORE DELETE ON a
BEGIN SELECT RAISE(ABORT, 'no'); END;
REVOKE DELETE ON a FROM CURRENT_USER;
`
	want := []string{
		"CREATE TABLE a (x INTEGER)",
		"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RAISE EXCEPTION 'no';END\n$$",
		"CREATE TRIGGER t BEFORE DELETE ON a\nBEGIN SELECT RAISE(ABORT, 'no'); SELECT 1; END",
		"CREATE TRIGGER u BEFORE TRUNCATE ON a FOR EACH STATEMENT EXECUTE FUNCTION f()",
		"CREATE TRIGGER v BEFORE UPDATE ON a\nBEGIN SELECT CASE WHEN new.x < 0 THEN RAISE(ABORT, 'an END; here') END; END",
		"CREATE TEMP TRIGGER w BEFORE DELETE ON a\nBEGIN SELECT RAISE(ABORT, 'no'); END",
		"REVOKE DELETE ON a FROM CURRENT_USER",
	}
	if got := splitSQL(in); !slices.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}
