package store_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

func TestMigrations(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db, err := store.Open(ctx, storetest.Config(t, dialect))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v, _ := db.Version(ctx); v != 0 {
				t.Fatalf("fresh database at version %d", v)
			}
			applied, err := db.Migrate(ctx)
			if err != nil || len(applied) == 0 {
				t.Fatalf("first migrate: %v %v", applied, err)
			}
			again, err := db.Migrate(ctx)
			if err != nil || len(again) != 0 {
				t.Fatalf("second migrate applied %v, %v", again, err)
			}
			latest, _ := db.LatestVersion()
			if v, _ := db.Version(ctx); v != latest {
				t.Fatalf("version %d, latest %d", v, latest)
			}
			if err := db.CheckVersion(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestOperatorsAndSessions(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			op := &store.Operator{Login: "ana", PasswordHash: "h", Rights: "privacyRight"}
			if err := db.CreateOperator(ctx, op); err != nil || op.ID == 0 {
				t.Fatalf("create: %v id=%d", err, op.ID)
			}
			if err := db.CreateOperator(ctx, &store.Operator{Login: "ana", PasswordHash: "h"}); apperr.CodeOf(err) != apperr.Conflict {
				t.Fatalf("duplicate login: %v", err)
			}
			if ok, err := db.CreateOperatorIfMissing(ctx, &store.Operator{Login: "ana", PasswordHash: "x"}); ok || err != nil {
				t.Fatalf("CreateOperatorIfMissing on an existing login: %v %v", ok, err)
			}
			if _, err := db.FindOperatorByLogin(ctx, "ANA"); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("logins are exact: %v", err)
			}
			if _, err := db.FindOperatorByLogin(ctx, "%"); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("a wildcard must not match: %v", err)
			}
			// The failure counts go through the policy in one transaction:
			// it sees what is stored and the store's clock, and what it
			// returns is stored (the policy itself is session.Lockout's).
			first := clock.Now().UTC()
			lockUntil := first.Add(time.Hour)
			steps := []store.LogonFailures{
				{FailedLogons: 1, FirstFailureAt: &first},
				{FailedLogons: 0, LockedUntil: &lockUntil, Bans: 1},
			}
			var seen []store.LogonFailures
			for _, next := range steps {
				err := db.UpdateLogonFailures(ctx, op.ID, func(f store.LogonFailures, now time.Time) store.LogonFailures {
					if !now.Equal(clock.Now().UTC()) {
						t.Errorf("the policy got %v, the store's clock says %v", now, clock.Now())
					}
					seen = append(seen, f)
					return next
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			if len(seen) != 2 || seen[0].FailedLogons != 0 || seen[0].FirstFailureAt != nil ||
				seen[1].FailedLogons != 1 || seen[1].FirstFailureAt == nil || !seen[1].FirstFailureAt.Equal(first) {
				t.Fatalf("the policy saw %+v", seen)
			}
			if got, _ := db.FindOperatorByID(ctx, op.ID); got.LockedUntil == nil || !got.LockedUntil.Equal(lockUntil) || got.Bans != 1 || got.FailedLogons != 0 {
				t.Fatalf("stored after the policy: %+v", got)
			}
			if err := db.UpdateLogonFailures(ctx, 999, func(f store.LogonFailures, _ time.Time) store.LogonFailures { return f }); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("unknown operator: %v", err)
			}
			// An unlock clears every count.
			if err := db.ResetLogonFailures(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			if got, _ := db.FindOperatorByID(ctx, op.ID); got.LockedUntil != nil || got.Bans != 0 || got.FirstFailureAt != nil {
				t.Fatalf("after the reset: %+v", got)
			}

			s := &store.Session{ID: "jti-1", OperatorID: op.ID, SecurityTokenHash: "x", Created: clock.Now(), Expires: clock.Now().Add(time.Hour)}
			if _, err := db.CreateSession(ctx, s, op.PasswordHash, 0); err != nil {
				t.Fatal(err)
			}
			if err := db.RevokeOperatorSessions(ctx, op.ID); err != nil {
				t.Fatal(err)
			}
			got, _, err := db.FindSessionWithOperator(ctx, "jti-1")
			if err != nil || got.RevokedAt == nil {
				t.Fatalf("session not revoked: %+v %v", got, err)
			}
			n, err := db.DeleteExpiredSessions(ctx, clock.Now().Add(2*time.Hour))
			if err != nil || n != 1 {
				t.Fatalf("DeleteExpiredSessions = %d, %v", n, err)
			}
			if err := db.UpdateOperator(ctx, "nobody", store.OperatorUpdate{}); apperr.CodeOf(err) != apperr.NotFound {
				t.Fatalf("update unknown: %v", err)
			}
			ops, _ := db.FindOperators(ctx)
			if len(ops) != 1 || !strings.Contains(ops[0].Rights, "privacyRight") {
				t.Fatalf("FindOperators = %+v", ops)
			}
		})
	}
}

func TestSyncDataModel(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			reg, err := schemas.Default()
			if err != nil {
				t.Fatal(err)
			}
			if err := db.CheckViews(ctx, reg); err != nil {
				t.Fatalf("views and migrations disagree: %v", err)
			}
			for i := 0; i < 2; i++ { // idempotent
				if err := db.SyncDataModel(ctx, reg); err != nil {
					t.Fatalf("sync %d: %v", i, err)
				}
			}
			// An extension adds a column to an existing table.
			ext := fstest.MapFS{"ccpa.xml": {Data: []byte(`<schema namespace="cus" name="recipient" extendedSchema="nms:recipient">
  <element name="recipient"><attribute name="OPTOUTCCPA" type="boolean" label="Opt-Out for CCPA"/></element></schema>`)}}
			reg2, err := schemas.New(ext)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.SyncDataModel(ctx, reg2); err != nil {
				t.Fatal(err)
			}
			cols, err := db.ExistingColumnsForTest(ctx, "nms_recipient")
			if err != nil || !cols["optoutccpa"] || !cols["mobile_phone"] {
				t.Fatalf("columns after the extension: %v %v", cols, err)
			}
			cols, _ = db.ExistingColumnsForTest(ctx, "nms_tracking_log_rcp")
			if !cols["broad_log_id"] || !cols["recipient_id"] {
				t.Fatalf("link columns missing: %v", cols)
			}
		})
	}
}

// The statement runner binds "?" placeholders on both dialects, and leaves a "?" inside a
// quoted literal or identifier alone.
func TestQueryPlaceholders(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			var got []string
			err := db.QueryForTest(ctx, `SELECT 'a?''b', ? AS "x?", CAST(? AS TEXT)`, []any{"one", "two"}, func(v []any) error {
				for _, x := range v {
					switch x := x.(type) {
					case string:
						got = append(got, x)
					case []byte:
						got = append(got, string(x))
					default:
						t.Errorf("value %T %v", x, x)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(got, "|") != "a?'b|one|two" {
				t.Errorf("got %q", got)
			}
		})
	}
}

// TestRemainCheckNamespace: a remaining-rows check made with the namespace
// as a lookup read it fails with ErrNamespaceRewritten once the stored
// namespace changed (an update: rule, region, canon version or last
// change), inside a batch commit as outside; unchanged, it counts.
func TestRemainCheckNamespace(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			clock := storetest.NewClock()
			db := storetest.Open(t, dialect, clock.Now)
			read := exactNamespace(t, db)
			check := &store.RemainCheck{Table: "privacy_namespaces", Column: "name", Value: "none", Namespace: read}
			if n, err := db.CountRemaining(ctx, check); err != nil || n != 0 {
				t.Fatalf("unchanged namespace: %d %v", n, err)
			}
			clock.Advance(time.Second)
			changed := *read
			changed.MatchRule, changed.Canonical = "email", 0
			if err := db.UpdateNamespace(ctx, &changed); err != nil {
				t.Fatal(err)
			}
			if _, err := db.CountRemaining(ctx, check); err != store.ErrNamespaceRewritten {
				t.Fatalf("changed namespace: %v, want ErrNamespaceRewritten", err)
			}
			if err := db.CheckNamespace(ctx, read); err != store.ErrNamespaceRewritten {
				t.Fatalf("CheckNamespace: %v", err)
			}
		})
	}
}

// TestCheckNamespaceTakesNoLock: the check after each lookup only reads.
// It neither waits for a transaction that holds the namespace row (a
// namespace update) nor writes a row lock of its own that an update
// would then wait for.
func TestCheckNamespaceTakesNoLock(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, store.Postgres, nil)
	read := exactNamespace(t, db)
	release, err := storetest.SQLOf(t, db).LockTableIn(ctx, "privacy_namespaces", "EXCLUSIVE")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := db.CheckNamespace(short, read); err != nil {
		t.Fatalf("CheckNamespace beside a transaction that holds the namespaces: %v", err)
	}
}

// exactNamespace creates a namespace matching exactly and returns it as
// stored.
func exactNamespace(t *testing.T, db *store.DB) *store.Namespace {
	t.Helper()
	ctx := context.Background()
	if _, err := db.CreateNamespaceIfMissing(ctx, &store.Namespace{Name: "ns", Label: "NS", TargetSchema: "nms:recipient",
		ReconciliationKey: "@email", MatchRule: "exact", Canonical: 1}); err != nil {
		t.Fatal(err)
	}
	read, err := db.FindNamespaceByName(ctx, "ns")
	if err != nil {
		t.Fatal(err)
	}
	return read
}
