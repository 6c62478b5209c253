package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// No residue (DESIGN §4b). A DELETE only marks rows dead: SQLite keeps the
// bytes in free pages and in the WAL, PostgreSQL in dead tuples until a
// vacuum. secure_delete (set on every SQLite connection by Open) zeroes
// freed content; PurgeResidue, run once after a delete run, removes the
// rest that the database itself still holds. Backups and WAL archives are
// outside its reach: README.md says what remains there.

// SQLiteFile is the SQLite database file's name in the data directory.
const SQLiteFile = "campaign-privacy.db"

// prepareDataDir creates the data directory 0700 and the database file
// 0600, and tightens both when they already exist with wider modes: an
// erased subject's data must not be readable by other local users while it
// still sits in the files. SQLite gives its -wal and -shm files the mode of
// the database file.
func prepareDataDir(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("restrict data directory: %w", err)
	}
	path := filepath.Join(dir, SQLiteFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("create database file: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("restrict database file: %w", err)
		}
	}
	return path, nil
}

// PurgeResidue removes what a delete left inside the database. SQLite: a
// TRUNCATE checkpoint copies the WAL (which still holds the deleted rows'
// old pages) into the database, where secure_delete has zeroed them, and
// empties it. PostgreSQL: a VACUUM of each table removes its dead tuples;
// VACUUM cannot run in a transaction, so it goes straight to the pool.
func (d *DB) PurgeResidue(ctx context.Context, tables []string) error {
	if d.dialect != Postgres {
		var busy, logFrames, checkpointed int
		err := d.sql.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logFrames, &checkpointed)
		if err == nil && busy != 0 {
			// A reader held the WAL; the next run's checkpoint finishes it.
			err = errors.New("WAL checkpoint blocked by a reader")
		}
		return translate(err, "Checkpoint")
	}
	for _, t := range tables {
		if _, err := d.sql.ExecContext(ctx, "VACUUM "+quoteIdent(t)); err != nil {
			return translate(err, "Vacuum")
		}
	}
	return nil
}

// quoteIdent quotes an identifier, doubling any quote inside it.
func quoteIdent(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
