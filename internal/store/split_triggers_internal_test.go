package store

import (
	"slices"
	"strings"
	"testing"
)

// TestSplitSQLTriggerWithCommentsInItsBody (J167): an "end" in a trailing
// "--" comment or a /* … */ comment inside a trigger's body is not its END:
// the trigger is kept whole (it was cut at its first ";", and the
// migration failed to apply).
func TestSplitSQLTriggerWithCommentsInItsBody(t *testing.T) {
	for _, body := range []string{
		"UPDATE a SET n = n + 1 -- keep counting to the end\n  WHERE id = NEW.id;\n  SELECT 1;",
		"/* the end of a row */ UPDATE a SET n = n + 1 WHERE id = NEW.id;\n  SELECT 1;",
	} {
		in := "CREATE TRIGGER rv2_t AFTER INSERT ON b\nBEGIN\n  " + body + "\nEND;\nCREATE TABLE rv2_c (x INTEGER);\n"
		got := splitSQL(in)
		if len(got) != 2 || !strings.HasPrefix(got[0], "CREATE TRIGGER") || !strings.HasSuffix(got[0], "END") {
			t.Errorf("trigger not kept whole:\n%s\nsplit into %d statements: %q", in, len(got), got)
		}
	}
}

// TestSplitSQLKeepsWhatFollowsAnOpenTrigger (J167): an apostrophe or a
// "case" in a trailing comment opened a string or asked for one more END,
// so the trigger never ended and it and every statement after it were
// dropped without an error, the migration recorded as applied. Comments
// are left out now, and a statement left open at the end of a file is
// returned, for the database to refuse.
func TestSplitSQLKeepsWhatFollowsAnOpenTrigger(t *testing.T) {
	for _, comment := range []string{"-- don't count twice", "-- in case of a retry"} {
		in := "CREATE TRIGGER rv2_u AFTER INSERT ON b\nBEGIN\n  UPDATE a SET n = n + 1 " + comment + "\n  WHERE id = NEW.id;\nEND;\nCREATE TABLE rv2_d (x INTEGER);\nCREATE INDEX rv2_d_x ON rv2_d(x);\n"
		got := splitSQL(in)
		if len(got) != 3 {
			t.Errorf("comment %q: want 3 statements (the trigger, the table, the index), got %d: %q", comment, len(got), got)
		}
	}
}

// TestSplitSQLTriggerForms: nested CASE, ";" and END in strings and
// quoted names, words such as BACKEND and END_DATE, a CASE … END in the
// WHEN clause, a whole comment line, IF NOT EXISTS, lower case, TEMPORARY.
func TestSplitSQLTriggerForms(t *testing.T) {
	for _, trig := range []string{
		"create trigger if not exists rv2_a before update on a begin select case when new.x then case new.y when 1 then raise(abort, 'x;end') end end; select 1; end",
		"CREATE TEMPORARY TRIGGER rv2_b AFTER INSERT ON a BEGIN UPDATE backend SET cases = 1, end_date = 'END;' WHERE \"end\" = 1; INSERT INTO [case;] VALUES (`end`); END",
		"CREATE TRIGGER rv2_c BEFORE DELETE ON a WHEN CASE old.x WHEN 1 THEN 1 END BEGIN\n-- a whole comment line, with END\nSELECT RAISE(ABORT, 'it''s; END'); END",
	} {
		in := trig + ";\nCREATE TABLE rv2_z (x INTEGER);\n"
		want := []string{strings.Replace(trig, "\n-- a whole comment line, with END", "", 1), "CREATE TABLE rv2_z (x INTEGER)"}
		if got := splitSQL(in); !slices.Equal(got, want) {
			t.Errorf("got %q\nwant %q", got, want)
		}
	}
}
