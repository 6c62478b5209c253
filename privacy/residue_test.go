package privacy_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
)

// residueFixture opens the store itself, to know where its files are.
func residueFixture(t *testing.T, dialect string) (*fixture, store.Config) {
	cfg := storetest.Config(t, dialect)
	db := storetest.OpenConfig(t, cfg, nil)
	return newFixture(t, dialect, servertest.Options{DB: db}), cfg
}

// deleteSubject gives a recipient a unique first name, deletes it in one
// step and runs every workflow.
func deleteSubject(t *testing.T, f *fixture, email, unique string) {
	if err := storetest.SQLOf(t, f.env.DB).InsertRow(f.ctx, "nms_recipient", map[string]any{"id": int64(9301), "email": email, "first_name": unique}); err != nil {
		t.Fatal(err)
	}
	id := f.create(t, "defaultNamespace1", email, privacy.TypeDelete, false)
	if _, err := f.env.Privacy.Run(f.ctx, "all"); err != nil {
		t.Fatal(err)
	}
	if got := f.status(t, id); got != privacy.StatusComplete {
		t.Fatalf("status %v, want complete", got)
	}
}

func TestNoResidueInSQLiteFiles(t *testing.T) {
	f, cfg := residueFixture(t, store.SQLite)
	unique := "Residuetoken7f3a9c"
	deleteSubject(t, f, "residue@example.com", unique)
	path := filepath.Join(cfg.DataDir, store.SQLiteFile)
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(b, []byte(unique)); n > 0 {
			t.Errorf("%s still holds the erased value %d time(s)", filepath.Base(p), n)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", filepath.Base(p), st.Mode().Perm())
		}
	}
	if st, _ := os.Stat(cfg.DataDir); st.Mode().Perm() != 0o700 {
		t.Errorf("data directory has mode %v, want 0700", st.Mode().Perm())
	}
}

func TestDataDirTightenedWhenItExists(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, store.SQLiteFile)
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // past the umask
		t.Fatal(err)
	}
	db, err := store.Open(context.Background(), store.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if st, _ := os.Stat(p); st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, st.Mode().Perm(), want)
		}
	}
}

func TestPostgresVacuumedAfterDelete(t *testing.T) {
	f, cfg := residueFixture(t, store.Postgres)
	deleteSubject(t, f, "residue@example.com", "Residuetoken7f3a9c")
	conn, err := sql.Open("pgx", cfg.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The statistics are reported asynchronously: wait for them a while.
	deadline := time.Now().Add(15 * time.Second)
	for {
		var last sql.NullTime
		var dead int64
		err := conn.QueryRow(`SELECT last_vacuum, n_dead_tup FROM pg_stat_user_tables
			WHERE schemaname = current_schema() AND relname = 'nms_recipient'`).Scan(&last, &dead)
		if err != nil {
			t.Fatal(err)
		}
		if last.Valid && dead == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nms_recipient not vacuumed after the delete run: last_vacuum %v, n_dead_tup %d", last, dead)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
