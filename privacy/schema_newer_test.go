package privacy_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// upgradeElsewhere marks the database one migration ahead of this binary,
// as another replica's newer binary leaves it when it migrates during a
// rolling upgrade.
func upgradeElsewhere(t *testing.T, f *fixture) (have, latest int) {
	t.Helper()
	latest, err := f.env.DB.LatestVersion()
	if err != nil {
		t.Fatal(err)
	}
	if err := storetest.SQLOf(t, f.env.DB).Exec(f.ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		latest+1, fmt.Sprintf("%04d_from_a_newer_binary.sql", latest+1), time.Now().UTC()); err != nil {
		t.Fatal(err)
	}
	return latest + 1, latest
}

// wantSchemaRefusal checks err is the refusal of a newer schema, naming
// both versions.
func wantSchemaRefusal(t *testing.T, what string, err error, have, latest int) {
	t.Helper()
	msg := apperr.MessageOf(err)
	if apperr.CodeOf(err) != apperr.Conflict || !strings.Contains(msg, strconv.Itoa(have)) || !strings.Contains(msg, strconv.Itoa(latest)) {
		t.Fatalf("%s on a schema newer than the binary: err %v; want it refused, naming versions %d and %d", what, err, have, latest)
	}
}

// TestWorkflowsRefuseASchemaNewerThanTheBinary: the schema version was
// checked only at start. A replica still running the previous binary
// after a newer one migrated the database went on running its schedule,
// SOAP Starts and `workflow run` on a schema it does not know (a release
// before 0019 upserting privacy_residue on a key 0019 removed, one before
// 0020 deleting rows without counting them for the receipt). Each run is
// refused instead, and changes nothing.
func TestWorkflowsRefuseASchemaNewerThanTheBinary(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		f := newFixture(t, dialect, servertest.Options{})
		a := f.create(t, "defaultNamespace1", "demo-1@example.com", privacy.TypeAccess, false)
		b := f.create(t, "defaultNamespace1", "demo-2@example.com", privacy.TypeAccess, false)
		have, latest := upgradeElsewhere(t, f)

		reports, err := f.env.Privacy.RunTaken(f.ctx, "all")
		processed := 0
		for _, r := range reports {
			processed += r.Processed
		}
		if processed != 0 {
			t.Errorf("the scheduled run processed %d request(s) on a schema newer than the binary", processed)
		}
		wantSchemaRefusal(t, "a scheduled run (RunTaken)", err, have, latest)
		wantSchemaRefusal(t, "a SOAP Start", f.env.Privacy.StartWorkflow(f.ctx, admin, privacy.Collect), have, latest)
		_, err = f.env.Privacy.Run(f.ctx, privacy.Collect)
		wantSchemaRefusal(t, "a run", err, have, latest)
		for _, id := range []int64{a, b} {
			if s := f.status(t, id); s != privacy.StatusNew {
				t.Errorf("request %d is %s; the refused runs were to leave it new", id, s)
			}
		}
	})
}

// TestWorkflowRunStopsWhenTheSchemaMovesOn: a long run goes on claim after
// claim; an upgrade of the database by another replica meanwhile stops it
// at its next claim, and the requests not yet claimed stay as they were.
func TestWorkflowRunStopsWhenTheSchemaMovesOn(t *testing.T) {
	eachStore(t, func(t *testing.T, dialect string) {
		var f *fixture
		var have, latest int
		upgraded := false
		f = newFixture(t, dialect, servertest.Options{Privacy: func(c *privacy.Config) {
			c.Workers = 1
			c.Failpoint = func(name string) error {
				if name == "batch-after-commit" && !upgraded {
					upgraded = true
					have, latest = upgradeElsewhere(t, f) // after the first claim's commit
				}
				return nil
			}
		}})
		var ids []int64
		for i := range 12 { // a claim takes 10
			ids = append(ids, f.create(t, "defaultNamespace1", fmt.Sprintf("nobody-%d@example.com", i), privacy.TypeAccess, false))
		}
		reports, err := f.env.Privacy.RunTaken(f.ctx, privacy.Collect)
		if !upgraded {
			t.Fatal("the failpoint was not reached")
		}
		wantSchemaRefusal(t, "the claim after the upgrade", err, have, latest)
		if len(reports) != 1 || reports[0].Processed != 10 {
			t.Errorf("reports %v; want the first claim's 10 requests processed", reports)
		}
		left := 0
		for _, id := range ids {
			if f.status(t, id) == privacy.StatusNew {
				left++
			}
		}
		if left != 2 {
			t.Errorf("%d request(s) left new; want the 2 the run had not claimed before the upgrade", left)
		}
	})
}
