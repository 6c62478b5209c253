package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
	"gorm.io/gorm"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
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

// ResiduePurge says how PurgeResidue works on PostgreSQL.
type ResiduePurge struct {
	// Rewrite runs VACUUM FULL: the table is copied into a new file and the
	// old one removed, so the erased rows' bytes leave the table's files. A
	// plain VACUUM frees their space but does not zero it: the bytes stay
	// in the page until a new row overwrites them. The rewrite holds an
	// exclusive lock on the table while it copies it.
	Rewrite bool
	// Wait bounds how long the purge waits for the transactions older than
	// the deletes to end (their snapshots still see the deleted rows, so no
	// vacuum may remove them), and for the rewrite's lock.
	Wait time.Duration
	// Kept, when set, receives the planner statistics of emptied tables
	// that the purge could not drop (table.column: a view, a generated
	// column or a partition key uses the column): they still describe
	// the deleted rows, and the purge's record must say so.
	Kept *[]string
	// NotPurged, when set, receives the tables and views outside the data
	// model that still hold rows the deletes removed, each with why (a
	// cascade target or a materialized view the role may not purge, or
	// whose purge failed): the purge's record must say so.
	NotPurged *[]string
	// Cascaded, when set, receives the tables outside the data model into
	// which foreign keys cascade the deletes of the purged tables
	// (cascadeTargets; the role's or not), as SQL names them: the database
	// deleted (ON DELETE CASCADE) or unlinked (SET NULL, SET DEFAULT) rows
	// there with the subject's, which no count of the service's includes,
	// and the purge's record must say so.
	Cascaded *[]string
	// Only, when set, limits the marks of earlier runs the purge takes to
	// these tables': a cleanup's purge leaves the data model's (and those
	// outside it) to the delete run that completes their requests, which
	// must find and name what they still hold.
	Only []string
}

// notPurged adds to p.NotPurged a table or view outside the data model that
// keeps the deleted rows, and why, and logs it.
func (d *DB) notPurged(ctx context.Context, p ResiduePurge, name, why string, err error) {
	args := []any{"table", name, "why", why}
	if err != nil {
		args = append(args, "err", pgSafe(err))
	}
	d.log.WarnContext(ctx, "a table or materialized view outside the data model keeps rows the deletes removed: it is not purged", args...)
	if p.NotPurged != nil {
		*p.NotPurged = append(*p.NotPurged, name+" ("+why+")")
	}
}

// markResidue records in tx that tables hold residue until a purge
// (privacy_residue): the mark commits with the change, so a process that
// dies before its run's purge leaves it for the next run. A mark is a row
// appended for each change, never a row marked again: no transaction waits
// for another's mark (migration 0019), and a purge clears only the rows it
// read when it began, so a delete that commits while a purge runs (after
// its table's vacuum) leaves its table marked.
func markResidue(tx *gorm.DB, now time.Time, tables []string) error {
	names := slices.Compact(slices.Sorted(slices.Values(tables)))
	if len(names) == 0 {
		return nil
	}
	marks := make([]string, len(names))
	args := make([]any, 0, 2*len(names))
	for i, name := range names {
		marks[i] = "(?, ?)"
		args = append(args, name, now)
	}
	return tx.Exec("INSERT INTO privacy_residue (table_name, since) VALUES "+strings.Join(marks, ", "), args...).Error
}

// residueMark is a marked table: its oldest mark (its time and id), and
// its newest mark's id.
type residueMark struct {
	TableName string
	Since     time.Time
	First     int64
	Last      int64
}

// residueMarks reads the marked tables: each one's oldest mark by time (a
// delete that waited for a lock draws its id after a later one's: ids are
// not the marks' order), read as the column itself so that SQLite's driver
// gives a time, and its newest mark's id.
func residueMarks(tx *gorm.DB) ([]residueMark, error) {
	var rows []residueMark
	err := tx.Raw(`SELECT r.table_name, r.since, r.id AS first, m.last FROM privacy_residue r
		JOIN (SELECT table_name, MIN(since) AS oldest, MAX(id) AS last FROM privacy_residue GROUP BY table_name) m
		ON r.table_name = m.table_name AND r.since = m.oldest ORDER BY r.table_name, r.id`).Scan(&rows).Error
	var marks []residueMark
	for _, r := range rows {
		if len(marks) == 0 || marks[len(marks)-1].TableName != r.TableName {
			marks = append(marks, r)
		}
	}
	return marks, err
}

// ResidueMarks returns how many tables are marked for a residue purge, and
// the time of the oldest mark (zero when none is).
func (d *DB) ResidueMarks(ctx context.Context) (n int64, oldest time.Time, err error) {
	marks, err := residueMarks(d.reader.WithContext(ctx))
	for _, m := range marks {
		if oldest.IsZero() || m.Since.Before(oldest) {
			oldest = m.Since
		}
	}
	return int64(len(marks)), oldest, translate(err, "Residue")
}

// PurgeResidue removes what deletes left inside the database in tables, and
// in the tables an earlier run marked by runStart and did not purge (a
// crash, an older transaction that outlasted its wait). It returns the
// tables it purged and those it could not purge fully; their marks stay,
// so the next run purges them again.
//
// SQLite: the tables' index samples are taken again where an ANALYZE left
// some (resampleSQLite), then a TRUNCATE checkpoint copies the WAL (which
// still holds the deleted rows' old pages) into the database, where
// secure_delete has zeroed them, and empties it. PostgreSQL: once no
// transaction older than the deletes is left, a VACUUM (FULL, with
// p.Rewrite) of each table.
func (d *DB) PurgeResidue(ctx context.Context, tables []string, runStart time.Time, p ResiduePurge) (purged, pending []string, err error) {
	seen, stale, outside, err := d.takeMarks(ctx, runStart, p)
	if err != nil {
		return nil, tables, err
	}
	tables = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(tables), stale...))))
	if len(tables) == 0 && len(outside) == 0 {
		return nil, nil, nil
	}
	var cascaded, views []string
	markOf := map[string]string{} // a marked table's or view's SQL name: its mark
	if d.dialect == Postgres {
		if tables, cascaded, views, err = d.purgeTargets(ctx, tables, outside, seen, markOf, p); err != nil {
			return nil, tables, err
		}
	} else if p.Cascaded != nil {
		found, err := d.cascadeTargetsSQLite(ctx, tables)
		if err != nil {
			return nil, tables, translate(err, "Residue")
		}
		*p.Cascaded = append(*p.Cascaded, found...)
	}
	pending, skipped, err := d.purge(ctx, tables, cascaded, views, p)
	purged = slices.DeleteFunc(slices.Clone(tables), func(t string) bool {
		return slices.Contains(pending, t) || slices.Contains(skipped, t)
	})
	if markErr := d.markUnpurged(ctx, append(slices.Clone(pending), skipped...), markOf); markErr != nil && err == nil {
		return purged, pending, markErr
	}
	// A mark made after the purge began stays: its change may have come
	// after the vacuum of its table. The marks go only once the purge has
	// finished without error: one that did not finish (a lock not granted,
	// an older transaction) records only that, not what it found (the
	// statistics it could not drop, the views and tables outside the data
	// model it did not purge), so the next run purges every marked table
	// again, finds them again and names them with the requests it
	// completes.
	if err != nil {
		return purged, pending, err
	}
	for _, t := range append(slices.Clone(purged), views...) {
		key := t
		if k, ok := markOf[t]; ok {
			key = k
		}
		if last, ok := seen[key]; ok {
			if err := clearMarks(ctx, d, key, last); err != nil {
				return purged, pending, err
			}
		}
	}
	return purged, pending, nil
}

// takeMarks reads the marks of earlier runs: each marked table's newest
// mark as the purge begins (seen), the data-model tables marked before
// runStart that this purge takes (stale: those of p.Only when set), and
// the marks of tables and views outside the data model (outside). It
// keeps of each table's marks only its oldest and newest.
func (d *DB) takeMarks(ctx context.Context, runStart time.Time, p ResiduePurge) (seen map[string]int64, stale, outside []string, err error) {
	marks, err := residueMarks(d.db.WithContext(ctx))
	if err != nil {
		return nil, nil, nil, translate(err, "Residue")
	}
	var left []string
	seen = map[string]int64{}
	for _, m := range marks {
		seen[m.TableName] = m.Last
		// Two marks say all the rows between them say (the oldest time,
		// the newest id): the log stays small while purges are held.
		if err := d.db.WithContext(ctx).Exec("DELETE FROM privacy_residue WHERE table_name = ? AND id < ? AND id <> ?",
			m.TableName, m.Last, m.First).Error; err != nil {
			return nil, nil, nil, translate(err, "Residue")
		}
		// At runStart too: on a coarse clock (or a test's) an earlier
		// run's mark and this run's start may read the same time.
		switch {
		case m.Since.After(runStart.UTC()):
		case p.Only != nil && !slices.Contains(p.Only, m.TableName):
			left = append(left, m.TableName)
		case outsideMark(m.TableName):
			// A mark of a table outside the data model (a cascade target
			// or a materialized view, below) is its oid and its SQL name
			// when marked, "16412:crm.note": found again if renamed. A
			// data-model table's name starts with a letter
			// (schemas.tablePattern).
			outside = append(outside, m.TableName)
		default:
			stale = append(stale, m.TableName)
		}
	}
	if len(left) > 0 {
		d.log.WarnContext(ctx, "a cleanup's residue purge leaves the tables marked by a delete run whose purge did not finish to the next delete run, which completes its requests", "tables", strings.Join(slices.Compact(slices.Sorted(slices.Values(left))), ", "))
	}
	return seen, stale, outside, nil
}

// purgeTargets adds to tables (PostgreSQL) the tables outside the data
// model that its marks (outside) name or that the deletes' cascades
// reached (cascaded, also in tables), and returns the materialized views
// its marks name; it drops the tables and views dropped since they were
// marked, and their marks. markOf receives each marked table's or view's
// mark under its SQL name.
func (d *DB) purgeTargets(ctx context.Context, tables, outside []string, seen map[string]int64, markOf map[string]string, p ResiduePurge) (all, cascaded, views []string, err error) {
	cascaded, views, gone, err := d.resolveMarks(ctx, outside, markOf, p)
	if err != nil {
		return tables, nil, nil, translate(err, "Residue")
	}
	// A marked table dropped since (a custom schema's, removed) has no
	// file left to purge either.
	dropped, err := scanColumn[string](d.sql.QueryContext(ctx, "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(quote_ident(t)) IS NULL", tables))
	if err != nil {
		return tables, nil, nil, translate(err, "Residue")
	}
	tables = slices.DeleteFunc(tables, func(t string) bool { return slices.Contains(dropped, t) })
	gone = append(gone, dropped...)
	found, err := d.cascadeTargetsOf(ctx, tables, p)
	if err != nil {
		return tables, nil, nil, translate(err, "Residue")
	}
	cascaded = slices.Compact(slices.Sorted(slices.Values(append(cascaded, found...))))
	tables = slices.Compact(slices.Sorted(slices.Values(append(tables, cascaded...))))
	for _, k := range gone {
		if last, ok := seen[k]; ok {
			if err := clearMarks(ctx, d, k, last); err != nil {
				return tables, nil, nil, err
			}
		}
	}
	return tables, cascaded, views, nil
}

// markUnpurged marks the tables and views outside the data model among
// unpurged (SQL names them, with a dot; the data model's have none) that
// carry no mark yet, as a data-model table is marked by its delete: their
// own deletes (the database's) left no mark, and the next run may delete
// nothing that leads to them (a two-step delete's).
func (d *DB) markUnpurged(ctx context.Context, unpurged []string, markOf map[string]string) error {
	unpurged = slices.DeleteFunc(unpurged, func(t string) bool {
		_, marked := markOf[t]
		return marked || !strings.Contains(t, ".")
	})
	if len(unpurged) == 0 {
		return nil
	}
	keys, err := scanColumn[string](d.sql.QueryContext(ctx, `SELECT to_regclass(t)::oid::text || ':' || t FROM unnest($1::text[]) AS t
		WHERE to_regclass(t) IS NOT NULL`, unpurged))
	if err == nil {
		err = markResidue(d.db.WithContext(ctx), d.now().UTC(), keys)
	}
	return translate(err, "Residue")
}

// clearMarks deletes table's marks up to the newest the purge read.
func clearMarks(ctx context.Context, d *DB, table string, last int64) error {
	err := d.db.WithContext(ctx).Exec("DELETE FROM privacy_residue WHERE table_name = ? AND id <= ?", table, last).Error
	return translate(err, "Residue")
}

// outsideMark reports whether a residue mark is that of a table or view
// outside the data model: its oid and SQL name.
func outsideMark(mark string) bool { return mark != "" && mark[0] >= '0' && mark[0] <= '9' }

// markedOutside (argument: marks of tables and views outside the data
// model) says of each the relation its oid names now — none when it was
// dropped (or the oid names something else) — its SQL name, whether it is
// a materialized view, and whether the role may purge it (owns it, in a
// schema it may use).
const markedOutside = `SELECT t, c.oid IS NOT NULL AND c.relkind IN ('r', 'p', 'm'),
		CASE WHEN c.oid IS NULL THEN '' ELSE format('%I.%I', n.nspname, c.relname) END, COALESCE(c.relkind = 'm', false),
		COALESCE(pg_has_role(current_user, c.relowner, 'USAGE') AND has_schema_privilege(n.oid, 'USAGE'), false)
	FROM unnest($1::text[]) AS t
	LEFT JOIN (pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace) ON c.oid = split_part(t, ':', 1)::oid`

// resolveMarks finds the tables and views outside the data model that
// marks (outsideMark) name, as SQL names them now, recording each one's
// mark in markOf; gone are the marks of those dropped since. One the role
// may no longer purge keeps its mark (NotPurged). A view is refreshed only
// under the name it was marked with: a refresh changes what a view holds,
// and an oid that names another view now (the marked one dropped, its oid
// taken again) must not make the purge refresh a view that is not built on
// the data model; a marked view renamed is not refreshed (NotPurged).
func (d *DB) resolveMarks(ctx context.Context, marks []string, markOf map[string]string, p ResiduePurge) (tables, views, gone []string, err error) {
	if len(marks) == 0 {
		return nil, nil, nil, nil
	}
	rows, err := d.sql.QueryContext(ctx, markedOutside, marks)
	if err != nil {
		return nil, nil, nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			mark, name            string
			exists, view, allowed bool
		)
		if err := rows.Scan(&mark, &exists, &name, &view, &allowed); err != nil {
			return nil, nil, nil, err
		}
		switch {
		case !exists:
			gone = append(gone, mark)
		case !allowed:
			d.notPurged(ctx, p, name, "the database role does not own it or may not use its schema", nil)
		case view && mark[strings.IndexByte(mark, ':')+1:] != name:
			d.notPurged(ctx, p, mark[strings.IndexByte(mark, ':')+1:], "materialized view renamed or dropped since it was marked", nil)
			gone = append(gone, mark)
		case view:
			views, markOf[name] = append(views, name), mark
		default:
			tables, markOf[name] = append(tables, name), mark
		}
	}
	return tables, views, gone, rows.Err()
}

// cascadeTargets (argument: the tables a run deleted from) names, as SQL
// does, the tables of any schema whose foreign keys cascade a delete from
// them or from a table under them (their deletes reach their partitions
// and inheritance children), or set null or a default on it — a DBA's,
// outside the data model — and from those in turn (and from their
// partitions: a cascade reaches them through their parent, but not an
// inheritance child, as PostgreSQL's cascades delete FROM ONLY a table),
// each with whether the service's role may rewrite it (its own, in a
// schema it may use: the vacuum of another's is skipped with a warning,
// and a schema's USAGE revoked after the deletes would make its name fail
// to resolve). A partition is purged with its parent, a foreign key's
// copies on partitions (conparentid) are their parent's. The database
// deleted or rewrote their rows with the subject's, and the old rows'
// bytes stay in their pages as in the others' until a rewrite. They are
// outside the data model, which is what the receipt speaks for. SQLite
// needs none: secure_delete zeroes every deleted row, cascaded or not.
const cascadeTargets = `WITH RECURSIVE model(oid) AS (
		SELECT t.oid FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
			WHERE n.nspname = current_schema() AND t.relname = ANY($1::text[])
		UNION
		SELECT i.inhrelid FROM pg_inherits i JOIN model m ON i.inhparent = m.oid),
	edge(parent, child, fk) AS (
		SELECT c.confrelid, c.conrelid, true FROM pg_constraint c
			WHERE c.contype = 'f' AND c.confdeltype IN ('c', 'n', 'd') AND c.conparentid = 0
		UNION ALL
		SELECT i.inhparent, i.inhrelid, false FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
			WHERE p.relkind = 'p'),
	reach(oid, fk) AS (
		SELECT e.child, true FROM edge e JOIN model m ON e.parent = m.oid WHERE e.fk
		UNION
		SELECT e.child, e.fk FROM edge e JOIN reach r ON e.parent = r.oid)
	SELECT format('%I.%I', n.nspname, t.relname),
		pg_has_role(current_user, t.relowner, 'USAGE') AND has_schema_privilege(n.oid, 'USAGE')
	FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE t.oid IN (SELECT oid FROM reach WHERE fk) AND t.oid NOT IN (SELECT oid FROM reach WHERE NOT fk)
			AND t.oid NOT IN (SELECT oid FROM model) AND t.relkind IN ('r', 'p') ORDER BY 1`

// cascadeTargetsOf runs cascadeTargets: the tables outside tables that a
// purge of them rewrites too, as SQL names them. Those the role may not
// rewrite are logged, not returned.
func (d *DB) cascadeTargetsOf(ctx context.Context, tables []string, p ResiduePurge) ([]string, error) {
	rows, err := d.sql.QueryContext(ctx, cascadeTargets, tables)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var (
			name  string
			owned bool
		)
		if err := rows.Scan(&name, &owned); err != nil {
			return nil, err
		}
		if p.Cascaded != nil {
			*p.Cascaded = append(*p.Cascaded, name)
		}
		if !owned {
			d.notPurged(ctx, p, name, "the database role does not own it or may not use its schema", nil)
			continue
		}
		out = append(out, name)
	}
	return out, rows.Err()
}

// cascadeTargetsSQLite is cascadeTargets on SQLite: the tables outside
// tables whose foreign keys cascade a delete from them (ON DELETE CASCADE,
// SET NULL, SET DEFAULT; the service's connections enforce foreign keys),
// and from those in turn. Their rows need no purge of their own
// (secure_delete zeroes every deleted row, cascaded or not); the purge's
// record names them, as on PostgreSQL.
func (d *DB) cascadeTargetsSQLite(ctx context.Context, tables []string) ([]string, error) {
	rows, err := d.sql.QueryContext(ctx, `SELECT m.name, f."table" FROM sqlite_master m, pragma_foreign_key_list(m.name) f
		WHERE m.type = 'table' AND f.on_delete IN ('CASCADE', 'SET NULL', 'SET DEFAULT')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	// SQLite's names match without regard to the case of ASCII letters
	// only: "Note_Ä" and "note_ä" are two tables.
	fold := func(name string) string {
		return strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + ('a' - 'A')
			}
			return r
		}, name)
	}
	children := map[string][]string{} // a parent's folded name: its children
	for rows.Next() {
		var child, parent string
		if err := rows.Scan(&child, &parent); err != nil {
			return nil, err
		}
		children[fold(parent)] = append(children[fold(parent)], child)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, t := range tables {
		seen[fold(t)] = true
	}
	var out []string
	for queue := slices.Clone(tables); len(queue) > 0; queue = queue[1:] {
		for _, c := range children[fold(queue[0])] {
			if !seen[fold(c)] {
				seen[fold(c)] = true
				out = append(out, c)
				queue = append(queue, c)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// descendants names, as SQL does, every table under $1 (partitions and,
// with $2, inheritance children, at any depth), each with whether it is
// reached through PostgreSQL's older inheritance (INHERITS) alone: the
// deletes of $1's rows reached such a child's rows, but a VACUUM of $1 does
// not reach its file (it does a partitioned table's partitions).
const descendants = `WITH RECURSIVE tree(oid, inherits) AS (
		SELECT i.inhrelid, p.relkind = 'r' FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
			WHERE i.inhparent = to_regclass($1) AND ($2 OR p.relkind = 'p')
		UNION
		SELECT i.inhrelid, t.inherits AND p.relkind = 'r' FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
			JOIN pg_class p ON p.oid = i.inhparent WHERE $2 OR p.relkind = 'p')
	SELECT format('%I.%I', n.nspname, c.relname), bool_or(t.inherits AND c.relkind IN ('r', 'p')) FROM tree t
		JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p', 'm') GROUP BY 1 ORDER BY 1`

// underTable returns, for a table the purge rewrites (as SQL names it), the
// inheritance children it rewrites after it, and those of it and of the
// tables under it that the role may not purge (mayNotVacuum), as SQL names
// them. inherits: whether the deletes reached its inheritance children —
// the service's deletes do; a cascade's (a DBA's table outside the model)
// do not, it reaches partitions only.
func underTable(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, table string, inherits bool) (children, refused []string, err error) {
	rows, err := q.QueryContext(ctx, descendants, table, inherits)
	if err != nil {
		return nil, nil, err
	}
	all := []string{table}
	for rows.Next() {
		var name string
		var child bool
		if err := rows.Scan(&name, &child); err != nil {
			rows.Close()
			return nil, nil, err
		}
		if all = append(all, name); child {
			children = append(children, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	refused, err = scanColumn[string](q.QueryContext(ctx, mayNotVacuum, all))
	return children, refused, err
}

// NotVacuumable names, as SQL does, those of tables and of the partitions
// and children under them that the role may not purge: the residue purge
// refuses them (PostgreSQL; on SQLite, none).
func (d *DB) NotVacuumable(ctx context.Context, tables []string) ([]string, error) {
	if d.dialect != Postgres {
		return nil, nil
	}
	var out []string
	for _, t := range tables {
		_, refused, err := underTable(ctx, d.sql, quoteIdent(t), true)
		if err != nil {
			return nil, translate(err, "Table")
		}
		out = append(out, refused...)
	}
	return out, nil
}

// mayNotVacuum returns those of the tables $1 (as SQL names them) that
// the purge may not purge: it vacuums them, and drops an emptied table's
// statistics by changing its columns' types, which needs the table's
// owner — the role itself, a role whose privileges it has (a NOINHERIT
// member has not), or a superuser. The database's owner, or MAINTAIN on
// PostgreSQL 17, may vacuum but not change the columns.
const mayNotVacuum = `SELECT t FROM unnest($1::text[]) AS t
	JOIN pg_class c ON c.oid = to_regclass(t)
	WHERE NOT (pg_has_role(current_user, c.relowner, 'USAGE')
		OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))
	ORDER BY t`

// purge is PurgeResidue's work on tables, and on the materialized views
// built on them and views (marked before: refreshed whatever the tables).
// A table of cascaded (outside the data model, cascadeTargets; named as SQL
// names it, the others by their names in the service's schema) whose purge
// fails is logged and skipped, not counted as purged: a DBA's table must
// not hold back every delete.
func (d *DB) purge(ctx context.Context, tables, cascaded, views []string, p ResiduePurge) (pending, skipped []string, err error) {
	if d.dialect != Postgres {
		if err := d.resampleSQLite(ctx, tables); err != nil {
			return tables, nil, translate(err, "Analyze")
		}
		busy, err := d.checkpointTruncate(ctx)
		if err == nil && busy {
			err = errors.New("WAL checkpoint blocked by a reader")
		}
		if err != nil {
			return tables, nil, translate(err, "Checkpoint")
		}
		return nil, nil, nil
	}
	holder, err := d.waitHorizon(ctx, p.Wait, false)
	if err != nil {
		return tables, nil, translate(err, "Vacuum")
	}
	rewrite := p.Rewrite && !holder.held()
	// ANALYZE with each: the table's statistics sample values, the erased
	// ones too. Up to purgeConns tables at once: a rewrite is mostly
	// sorting for the index builds, and each table is locked only while
	// its own copy is made. The largest first: a rewrite takes the time of
	// its table's size, and the largest started last would run alone at
	// the end (1M recipients: 26.6 s of rewrites in name order against 25 s
	// largest first, from one run's per-table times).
	names := make([]string, len(tables)) // as SQL names them
	sqlNames := map[string]string{}
	for i, t := range tables {
		if names[i] = quoteIdent(t); slices.Contains(cascaded, t) {
			names[i] = t
		}
		sqlNames[t] = names[i]
	}
	bySize, err := scanColumn[string](d.sql.QueryContext(ctx, `SELECT t FROM unnest($1::text[], $2::text[]) AS n(t, name)
		ORDER BY pg_total_relation_size(to_regclass(name)) DESC NULLS LAST, t`, tables, names))
	if err != nil {
		return tables, nil, translate(err, "Vacuum")
	}
	var (
		mu                      sync.Mutex
		locked                  []string
		notOwned, notOwnedNames []string // the tables, and which of them or under them the role may not vacuum
		kept                    []string // the statistics the purge could not drop
	)
	defer func() {
		if p.Kept != nil {
			*p.Kept = slices.Compact(slices.Sorted(slices.Values(kept)))
		}
	}()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(purgeConns)
	for _, t := range bySize {
		name := sqlNames[t]
		g.Go(func() error {
			var refused []string
			lock, err := d.onConn(gctx, func(conn *sql.Conn) (bool, error) {
				// PostgreSQL skips, with a mere warning, the vacuum of a
				// table the role may not vacuum: its deleted rows would
				// stay in its file behind a "purged".
				children, r, err := underTable(gctx, conn, name, !slices.Contains(cascaded, t))
				if refused = r; err != nil || len(refused) > 0 {
					return false, err
				}
				lock, err := vacuum(gctx, conn, rewrite, p.Wait, "VACUUM (FULL, ANALYZE) "+name, "VACUUM (ANALYZE) "+name)
				if err == nil && !lock {
					for _, c := range children {
						if err != nil || lock {
							break
						}
						lock, err = vacuum(gctx, conn, rewrite, p.Wait, "VACUUM (FULL, ANALYZE) "+c, "VACUUM (ANALYZE) "+c)
					}
				}
				var k, ka []string
				if err == nil && !lock {
					lock, k, err = d.dropStatisticsIfEmpty(gctx, conn, name)
				}
				if err == nil && !lock {
					lock, ka, err = d.refreshAncestors(gctx, conn, name)
				}
				mu.Lock()
				kept = append(append(kept, k...), ka...)
				mu.Unlock()
				return lock, err
			})
			mu.Lock()
			defer mu.Unlock()
			if err == nil && len(refused) > 0 {
				if slices.Contains(cascaded, t) {
					err = fmt.Errorf("the role may not vacuum %s", strings.Join(refused, ", "))
				} else {
					notOwned, notOwnedNames = append(notOwned, t), append(notOwnedNames, refused...)
					return nil
				}
			}
			if err != nil && slices.Contains(cascaded, t) {
				d.notPurged(ctx, p, t, "its purge failed", err)
				skipped = append(skipped, t)
				return nil
			}
			if lock {
				locked = append(locked, t)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return tables, nil, translate(err, "Vacuum")
	}
	lockedViews, viewsKept, err := d.refreshMaterializedViews(ctx, names, views, p)
	if err != nil {
		return tables, nil, translate(err, "Vacuum")
	}
	kept = append(kept, viewsKept...)
	// pg_statistic kept the old samples: it is purged the same way (a role
	// that does not own it gets a warning, no error). The ANALYZEs have
	// just replaced the tables' statistics rows, and a snapshot taken
	// before they committed still sees the old ones (an erased value among
	// their samples): a vacuum keeps what a snapshot sees, so this one
	// waits for those snapshots too. The service's own reads are such
	// snapshots; they last milliseconds.
	// After a wait already spent (the tables were only vacuumed: the
	// result is Busy whatever this finds), only a look, so that what holds
	// the catalogs is named with the rest.
	catalogWait := p.Wait
	if holder.held() {
		catalogWait = 0
	}
	catalogHolder, err := d.waitHorizon(ctx, catalogWait, true)
	if err != nil {
		return tables, nil, translate(err, "Vacuum")
	}
	holder = holder.with(catalogHolder)
	// pg_statistic_ext_data likewise: a DBA's extended statistics
	// (CREATE STATISTICS on lower(email)) keep samples of values too.
	var statsLocked bool
	for _, catalog := range []string{"pg_catalog.pg_statistic", "pg_catalog.pg_statistic_ext_data"} {
		locked, err := d.onConn(ctx, func(conn *sql.Conn) (bool, error) {
			return vacuum(ctx, conn, rewrite, p.Wait, "VACUUM FULL "+catalog, "VACUUM "+catalog)
		})
		if err != nil {
			return tables, nil, translate(err, "Vacuum")
		}
		statsLocked = statsLocked || locked
	}
	switch {
	case statsLocked:
		// A session holds pg_statistic (a monitoring query idle in its
		// transaction): the plain VACUUM freed the old samples without
		// zeroing them. The tables' marks stay; the next run purges again.
		if !p.Rewrite {
			return append(tables, lockedViews...), nil, apperr.Errorf(apperr.Busy, "The lock to vacuum pg_statistic (or pg_statistic_ext_data), which kept samples of the erased values, was not granted within %v: the next run vacuums it.", p.Wait)
		}
		return append(tables, lockedViews...), nil, apperr.Errorf(apperr.Busy, "The lock to rewrite pg_statistic (or pg_statistic_ext_data), which kept samples of the erased values, was not granted within %v: it was vacuumed, and the next run rewrites it.", p.Wait)
	case holder.held():
		return append(tables, lockedViews...), nil, apperr.Errorf(apperr.Busy, "A transaction older than the deletes or their purge (%s) was still open after %v: its snapshot keeps the deleted rows' old versions or their old statistics, for %d table(s), which the next run purges again.", holder, p.Wait, len(tables))
	case len(notOwned) > 0:
		slices.Sort(notOwnedNames)
		return append(append(locked, notOwned...), lockedViews...), skipped, apperr.Errorf(apperr.Forbidden, "The database role does not own %s: it may not rewrite them nor drop their statistics, so the rows deleted from them stay in their files, and the requests complete once they are purged. Make the role their owner (ALTER TABLE … OWNER TO); the next run purges them.", strings.Join(slices.Compact(notOwnedNames), ", "))
	case len(locked) > 0:
		if !rewrite {
			return append(locked, lockedViews...), skipped, apperr.Errorf(apperr.Busy, "The lock to vacuum %d table(s) (%s) was not granted within %v: the next run vacuums them.", len(locked), strings.Join(locked, ", "), p.Wait)
		}
		return append(locked, lockedViews...), skipped, apperr.Errorf(apperr.Busy, "The lock to rewrite %d table(s) (%s) was not granted within %v: they were vacuumed, and the next run rewrites them.", len(locked), strings.Join(locked, ", "), p.Wait)
	case len(lockedViews) > 0:
		return lockedViews, skipped, apperr.Errorf(apperr.Busy, "The lock to refresh %d materialized view(s) built on the purged tables (%s) was not granted within %v: they still hold the deleted rows, and the next run refreshes them (the service log names the server processes holding them).", len(lockedViews), strings.Join(lockedViews, ", "), p.Wait)
	}
	return nil, skipped, nil
}

// ancestors names, as SQL does, the tables above $1 (it a partition or an
// inheritance child, at any depth) that may hold statistics of its rows:
// tables and partitioned tables (a foreign table's ANALYZE reads its
// remote, not the rows under it). Each with whether the role may change
// them (owns them, in a schema it may use), and whether they have
// statistics as far as the role can tell (pg_stats shows them to a role
// that may read the columns; the last ANALYZE's time to any).
const ancestors = `WITH RECURSIVE up(oid) AS (
		SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = to_regclass($1)
		UNION
		SELECT i.inhparent FROM pg_inherits i JOIN up ON i.inhrelid = up.oid)
	SELECT format('%I.%I', n.nspname, c.relname),
		pg_has_role(current_user, c.relowner, 'USAGE') AND has_schema_privilege(n.oid, 'USAGE'),
		EXISTS (SELECT 1 FROM pg_stats st WHERE st.schemaname = n.nspname AND st.tablename = c.relname)
			OR EXISTS (SELECT 1 FROM pg_stat_all_tables s WHERE s.relid = c.oid AND (s.last_analyze IS NOT NULL OR s.last_autoanalyze IS NOT NULL))
	FROM up JOIN pg_class c ON c.oid = up.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'p')
	ORDER BY 1`

// refreshAncestors takes again the statistics of the tables above table (as
// SQL names it): a DBA's partitioned parent or inheritance parent of a
// purged table, whose ANALYZE sampled the rows of every table under it, the
// deleted ones with them, into its inherited statistics. ANALYZE samples
// what is left; what it leaves, an emptied table's, goes as a purged
// table's (dropStatisticsIfEmpty). A parent the role may not change, or
// whose ANALYZE fails, keeps its statistics, with a warning, and is
// returned in kept: the table under it is purged all the same — also one
// whose lock is not granted within the connection's lock timeout (a DBA's
// session may hold it for as long as it likes).
func (d *DB) refreshAncestors(ctx context.Context, conn *sql.Conn, table string) (locked bool, kept []string, err error) {
	rows, err := conn.QueryContext(ctx, ancestors, table)
	if err != nil {
		return false, nil, err
	}
	var mine []string
	for rows.Next() {
		var (
			name         string
			owned, stats bool
		)
		if err := rows.Scan(&name, &owned, &stats); err != nil {
			rows.Close()
			return false, nil, err
		}
		if !owned && stats {
			d.log.WarnContext(ctx, "the statistics of a table above a purged one could not be taken again: the database role does not own it", "table", name)
			kept = append(kept, name+" (inherited statistics)")
			continue
		}
		if owned {
			mine = append(mine, name)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, kept, err
	}
	for _, a := range mine {
		if _, err := conn.ExecContext(ctx, "ANALYZE "+a); err != nil {
			if ctx.Err() != nil {
				return false, kept, err
			}
			// A DBA's lock on the parent (held as long as it likes) must
			// not hold every delete back: the statistics are named as
			// kept; the parent's next ANALYZE replaces them.
			why := " (inherited statistics)"
			if isLockTimeout(err) {
				why = " (inherited statistics: its lock was not granted)"
			}
			d.log.WarnContext(ctx, "the statistics of a table above a purged one could not be taken again", "table", a, "err", pgSafe(err))
			kept = append(kept, a+why)
			continue
		}
		lock, k, err := d.dropStatisticsIfEmpty(ctx, conn, a)
		if kept = append(kept, k...); err != nil || lock {
			return lock, kept, err
		}
	}
	return false, kept, nil
}

// materializedViews names, as SQL does, the materialized views built
// (directly or through views: their _RETURN rules, not a DBA's rule on a
// table that reads one) on the tables $1 or those under them
// (partitions, inheritance children), and the views $2 (SQL names) with
// those built on them, holding rows: each with its schema and name,
// whether the role may refresh it (owns it, in a schema it may use), the
// views built on others after those.
const materializedViews = `WITH RECURSIVE base(oid) AS (
		SELECT to_regclass(t) FROM unnest($1::text[]) AS t
		UNION
		SELECT i.inhrelid FROM pg_inherits i JOIN base b ON i.inhparent = b.oid),
	dep(oid, depth) AS (
		SELECT to_regclass(v), 0 FROM unnest($2::text[]) AS v
		UNION
		SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
			WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.rulename = '_RETURN'
				AND d.refobjid IN (SELECT oid FROM base)
		UNION
		SELECT r.ev_class, dep.depth + 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid JOIN dep ON d.refobjid = dep.oid
			WHERE d.classid = 'pg_rewrite'::regclass AND d.refclassid = 'pg_class'::regclass AND r.rulename = '_RETURN'
				AND r.ev_class <> dep.oid AND dep.depth < 32)
	SELECT format('%I.%I', n.nspname, c.relname), n.nspname::text, c.relname::text,
		pg_has_role(current_user, c.relowner, 'USAGE') AND has_schema_privilege(n.oid, 'USAGE')
	FROM dep JOIN pg_class c ON c.oid = dep.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'm' AND c.relispopulated
		GROUP BY c.oid, n.oid, n.nspname, c.relname, c.relowner ORDER BY max(dep.depth), 1`

// refreshMaterializedViews refreshes the materialized views built on the
// purged tables (as SQL names them), and views — a DBA's report over
// nms_recipient keeps a copy of the rows as of its last refresh, the
// erased ones with them — those built on others after them. A refresh
// writes a new file and removes the old one, and the view's statistics
// are taken again; those of a view the refresh emptied stay (ANALYZE
// leaves an empty relation's, and a view's columns cannot be altered to
// drop them): named in kept. A view whose lock is not granted within wait
// is returned in locked, for the next run. One the role may not refresh,
// or whose refresh fails, keeps its rows, with a warning naming it: it is
// outside the data model and does not hold back the deletes.
func (d *DB) refreshMaterializedViews(ctx context.Context, tables, views []string, p ResiduePurge) (locked, kept []string, err error) {
	rows, err := d.sql.QueryContext(ctx, materializedViews, tables, views)
	if err != nil {
		return nil, nil, err
	}
	type view struct {
		name, schema, rel string
		owned             bool
	}
	var found []view
	for rows.Next() {
		var v view
		if err := rows.Scan(&v.name, &v.schema, &v.rel, &v.owned); err != nil {
			rows.Close()
			return nil, nil, err
		}
		found = append(found, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	// One wait for all the views: a report session holding fifty of them
	// must not hold the run for fifty waits. Those not tried within it are
	// left for the next run, as a view whose lock was not granted.
	deadline := time.Now().Add(p.Wait)
	for _, v := range found {
		if !v.owned {
			d.notPurged(ctx, p, v.name, "materialized view the database role does not own or may not use the schema of", nil)
			continue
		}
		if time.Until(deadline) <= 0 {
			locked = append(locked, v.name)
			continue
		}
		var emptied bool
		err := d.refreshView(ctx, v.name, v.schema, v.rel, time.Until(deadline), &emptied)
		var pg *pgconn.PgError
		switch {
		case err == nil && emptied:
			d.log.WarnContext(ctx, "the statistics of a materialized view the refresh emptied could not be dropped", "view", v.name)
			kept = append(kept, v.name)
		case err == nil:
		case ctx.Err() != nil:
			return locked, kept, err
		case errors.As(err, &pg) && pg.Code == "55P03": // lock_not_available
			holders, _ := scanColumn[string](d.sql.QueryContext(ctx, `SELECT DISTINCT format('%s (%s)', l.pid, coalesce(a.application_name, ''))
				FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
				WHERE l.relation = to_regclass($1) AND l.granted AND l.pid <> pg_backend_pid() ORDER BY 1`, v.name))
			d.log.WarnContext(ctx, "the lock to refresh a materialized view built on the purged tables was not granted: the next run refreshes it", "view", v.name, "held_by_server_processes", strings.Join(holders, ", "))
			locked = append(locked, v.name)
		default:
			d.notPurged(ctx, p, v.name, "materialized view whose refresh failed", err)
		}
	}
	return locked, kept, nil
}

// refreshView refreshes and analyzes one materialized view, waiting at
// most wait for its lock; emptied says whether it holds no row after and
// still has statistics.
func (d *DB) refreshView(ctx context.Context, name, schema, rel string, wait time.Duration, emptied *bool) error {
	tx, err := d.sql.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{fmt.Sprintf("SET LOCAL lock_timeout = %d", max(wait.Milliseconds(), 1)),
		"REFRESH MATERIALIZED VIEW " + name, "ANALYZE " + name} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if err := tx.QueryRowContext(ctx, `SELECT NOT EXISTS (SELECT 1 FROM `+name+`)
		AND EXISTS (SELECT 1 FROM pg_stats WHERE schemaname = $1 AND tablename = $2)`, schema, rel).Scan(emptied); err != nil {
		return err
	}
	return tx.Commit()
}

// resampleSQLite analyzes tables again where an ANALYZE (an operator's:
// the service runs none on SQLite) left sqlite_stat4, whose samples are
// index keys — an erased email among them. The new samples come from the
// rows left; secure_delete zeroes the old ones.
func (d *DB) resampleSQLite(ctx context.Context, tables []string) error {
	var stat4 int
	if err := d.sql.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat4'").Scan(&stat4); err != nil || stat4 == 0 {
		return err
	}
	for _, t := range tables {
		if _, err := d.sql.ExecContext(ctx, "ANALYZE "+quoteIdent(t)); err != nil {
			return err
		}
	}
	return nil
}

// MayVacuumStatistics reports whether the database role may vacuum
// pg_statistic, where ANALYZE keeps samples of column values: a superuser,
// the database's owner, or (PostgreSQL 17) a role with MAINTAIN on it.
// SQLite: yes.
func (d *DB) MayVacuumStatistics(ctx context.Context) (bool, error) {
	if d.dialect != Postgres {
		return true, nil
	}
	var may bool
	err := d.sql.QueryRowContext(ctx, `SELECT r.rolsuper
		OR pg_has_role(current_user, (SELECT datdba FROM pg_database WHERE datname = current_database()), 'MEMBER')
		OR CASE WHEN current_setting('server_version_num')::int >= 170000
			THEN has_table_privilege('pg_catalog.pg_statistic', 'MAINTAIN') ELSE false END
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&may)
	return may, translate(err, "Role")
}

// horizonHolders finds the server processes whose transaction or snapshot
// is older than $1 (a 64-bit transaction id), and so keeps a vacuum from
// removing the rows deleted before it: backends of this database, WAL
// senders (a standby's hot_standby_feedback), replication slots and
// prepared transactions; with $2, for a catalog (pg_statistic), also
// the logical slots' catalog_xmin (logical decoding keeps the catalogs'
// old rows, a change-data-capture consumer's slot of any database). It
// returns the first such process id, how many processes there are, and
// how many slots and prepared transactions. 32-bit ids are widened against
// the current 64-bit one (a wrapped id is older).
const horizonHolders = `
WITH now AS (SELECT txid_snapshot_xmax(txid_current_snapshot()) AS cur),
held AS (
	SELECT pid, x FROM pg_stat_activity,
		LATERAL (VALUES (backend_xmin), (backend_xid)) AS v(x)
	WHERE x IS NOT NULL AND pid <> pg_backend_pid()
	AND (datname = current_database() OR datid IS NULL)
	UNION ALL SELECT 0, xmin FROM pg_replication_slots WHERE xmin IS NOT NULL
	UNION ALL SELECT 0, catalog_xmin FROM pg_replication_slots WHERE $2 AND catalog_xmin IS NOT NULL
	UNION ALL SELECT 0, transaction FROM pg_prepared_xacts WHERE database = current_database()
),
wide AS (
	SELECT pid, ((cur >> 32) << 32) + x::text::bigint AS w, cur FROM held, now
)
SELECT coalesce(min(pid) FILTER (WHERE pid > 0), 0), count(*) FILTER (WHERE pid > 0), count(*) FILTER (WHERE pid = 0)
FROM wide WHERE CASE WHEN w > cur THEN w - 4294967296 ELSE w END < $1`

// purgeConns bounds the tables PurgeResidue vacuums at once: two rewrite
// 1M recipients' ten tables in 12 s instead of 16-18 s one at a time, four
// are no faster on two cores, and the pool's other eight connections serve
// the SOAP calls meanwhile.
const purgeConns = 2

// dropStatisticsIfEmpty removes the planner statistics that the deletes
// left describing rows that are gone: those of table (as SQL names it), and
// of the partitions or inheritance children under it, that are now empty.
// ANALYZE does not touch the statistics of a table it finds empty, so the
// old samples (an erased email as the most common value) would stay in
// pg_statistic. Changing a column's type to its own type is what drops
// them without a superuser: PostgreSQL skips the rewrite (nothing changes)
// but removes the column's statistics and rebuilds its indexes, nothing on
// an empty table. A partition's or child's column that comes from its
// parent can only be changed on the table that declares it, which passes
// the change to every table under it; the ones still holding rows are
// analyzed again after. One column at a time: a column PostgreSQL will not
// change (a view or generated column uses it, it is in a partition key,
// it is inherited from two parents, the table is typed, it is declared
// above table) keeps its statistics with a warning and is returned in
// kept, for the purge's record; the others are still dropped. A table on
// which row security is active for the role shows no statistics in
// pg_stats: all its columns are taken to have some. A lock not granted in
// lockTry is reported as locked: the mark stays, the next run tries again.
func (d *DB) dropStatisticsIfEmpty(ctx context.Context, conn *sql.Conn, table string) (locked bool, kept []string, err error) {
	type member struct {
		parent   int64
		name     string // as SQL names it
		own, inh []string
		emptyOwn bool // no row of its own
		emptyAll bool // no row in it or under it
		declared map[string]bool
		key      map[string]bool // its partition key's columns
		alter    map[string]string
		rls      bool // row security hides its statistics from pg_stats
		children bool
	}
	tree := map[int64]*member{}
	var order []int64
	rows, err := conn.QueryContext(ctx, `
		WITH RECURSIVE tree(oid, parent, depth) AS (
			SELECT to_regclass($1)::oid, 0::oid, 0
			UNION ALL SELECT i.inhrelid, i.inhparent, t.depth + 1 FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)
		SELECT t.oid::int8, t.parent::int8, format('%I.%I', n.nspname, c.relname), COALESCE(s.attname::text, ''), COALESCE(s.inherited, false),
			row_security_active(c.oid), EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = c.oid)
		FROM tree t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace
		LEFT JOIN pg_stats s ON s.schemaname = n.nspname AND s.tablename = c.relname
		ORDER BY t.depth, t.oid`, table)
	if err != nil {
		return false, kept, err
	}
	for rows.Next() {
		var (
			oid, parent        int64
			name, col          string
			inherited, rls, ch bool
		)
		if err := rows.Scan(&oid, &parent, &name, &col, &inherited, &rls, &ch); err != nil {
			rows.Close()
			return false, kept, err
		}
		m := tree[oid]
		if m == nil {
			m = &member{parent: parent, name: name, declared: map[string]bool{}, key: map[string]bool{}, alter: map[string]string{}, rls: rls, children: ch}
			tree[oid] = m
			order = append(order, oid)
		}
		switch {
		case col == "":
		case inherited:
			m.inh = append(m.inh, col)
		default:
			m.own = append(m.own, col)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return false, kept, err
	}
	// The members' columns: declared by the member itself or inherited,
	// in a partition key, and the change that drops their statistics.
	cols, err := conn.QueryContext(ctx, `
		SELECT a.attrelid::int8, a.attname::text, a.attinhcount = 0,
			a.attnum = ANY(COALESCE((SELECT p.partattrs::int2[] FROM pg_partitioned_table p WHERE p.partrelid = a.attrelid), '{}')),
			format('ALTER COLUMN %I TYPE %s', a.attname, format_type(a.atttypid, a.atttypmod))
				|| CASE WHEN a.attcollation <> 0 THEN format(' COLLATE %I.%I', n.nspname, c.collname) ELSE '' END
		FROM pg_attribute a
		LEFT JOIN pg_collation c ON c.oid = a.attcollation
		LEFT JOIN pg_namespace n ON n.oid = c.collnamespace
		WHERE a.attrelid = ANY($1::oid[]) AND a.attnum > 0 AND NOT a.attisdropped`, order)
	if err != nil {
		return false, kept, err
	}
	for cols.Next() {
		var (
			oid              int64
			name, alter      string
			declared, keyCol bool
		)
		if err := cols.Scan(&oid, &name, &declared, &keyCol, &alter); err != nil {
			cols.Close()
			return false, kept, err
		}
		m := tree[oid]
		m.declared[name], m.key[name], m.alter[name] = declared, keyCol, alter
	}
	cols.Close()
	if err := cols.Err(); err != nil {
		return false, kept, err
	}
	// Row security hides a table's rows of pg_stats from a role it
	// applies to (FORCE ROW LEVEL SECURITY: the owner too): every column
	// of such a table is taken to have statistics.
	for _, oid := range order {
		if m := tree[oid]; m.rls {
			m.own = m.own[:0]
			for c := range m.alter {
				m.own = append(m.own, c)
			}
			slices.Sort(m.own)
			if m.children {
				m.inh = slices.Clone(m.own)
			}
		}
	}
	// Which members' statistics describe rows that are all gone.
	type column struct {
		table int64
		name  string
	}
	var stale []column
	for _, oid := range order {
		m := tree[oid]
		if len(m.own) > 0 {
			if err := conn.QueryRowContext(ctx, "SELECT NOT EXISTS (SELECT 1 FROM ONLY "+m.name+")").Scan(&m.emptyOwn); err != nil {
				return false, kept, err
			}
			if m.emptyOwn {
				for _, c := range m.own {
					stale = append(stale, column{oid, c})
				}
			}
		}
		if len(m.inh) > 0 {
			if err := conn.QueryRowContext(ctx, "SELECT NOT EXISTS (SELECT 1 FROM "+m.name+")").Scan(&m.emptyAll); err != nil {
				return false, kept, err
			}
			if m.emptyAll {
				for _, c := range m.inh {
					stale = append(stale, column{oid, c})
				}
			}
		}
	}
	if len(stale) == 0 {
		return false, kept, nil
	}
	// Each stale column is changed on the member that declares it (up
	// from where its statistics are), once.
	done := map[column]bool{}
	changed := false
	for _, sc := range stale {
		at, keyCol := sc.table, false
		for at != 0 && tree[at] != nil && !tree[at].declared[sc.name] {
			keyCol = keyCol || tree[at].key[sc.name]
			at = tree[at].parent
		}
		m := tree[at]
		if m == nil {
			d.log.WarnContext(ctx, "the statistics of a table the deletes emptied could not be dropped: the column is declared by a table above it", "table", table, "column", sc.name)
			kept = append(kept, tree[sc.table].name+"."+quoteIdent(sc.name))
			continue
		}
		// Any member from sc.table up to the declaring one may key on it.
		if keyCol || m.key[sc.name] {
			d.log.WarnContext(ctx, "the statistics of a table the deletes emptied could not be dropped: the column is in a partition key", "table", tree[sc.table].name, "column", sc.name)
			kept = append(kept, tree[sc.table].name+"."+quoteIdent(sc.name))
			continue
		}
		if done[column{at, sc.name}] {
			continue
		}
		done[column{at, sc.name}] = true
		if err := setLockTimeout(ctx, conn, lockTry); err != nil {
			return false, kept, err
		}
		_, err := conn.ExecContext(ctx, "ALTER TABLE "+m.name+" "+m.alter[sc.name])
		switch code := pgCode(err); {
		case err == nil:
			changed = true
		case isLockTimeout(err), isDeadlock(err): // not granted this time: the mark stays
			return true, kept, nil
		case code == "0A000", code == "42P16", code == "42501", code == "42809":
			// A view, rule or generated column uses the column, a
			// partition key's expression does, it is inherited from
			// another parent too, a table under it has another owner, or
			// the table is typed: its old statistics stay until the table
			// has rows to analyze, and the purge's record says so.
			d.log.WarnContext(ctx, "the statistics of a table the deletes emptied could not be dropped", "table", m.name, "column", sc.name, "err", pgSafe(err))
			kept = append(kept, tree[sc.table].name+"."+quoteIdent(sc.name))
		default:
			return false, kept, err
		}
	}
	if !changed {
		return false, kept, nil
	}
	// The changes dropped the statistics of the tables that kept rows
	// too: sampled again, from what is left.
	for _, oid := range order {
		m := tree[oid]
		if (len(m.own) > 0 && !m.emptyOwn) || (len(m.inh) > 0 && !m.emptyAll) {
			if _, err := conn.ExecContext(ctx, "ANALYZE "+m.name); err != nil {
				return false, kept, err
			}
		}
	}
	return false, kept, nil
}

// lockTry bounds each attempt of a rewrite to take its table's lock. While
// the rewrite waits for the readers it queues, every new reader of the
// table waits behind it: a short try, retried, keeps that stall short.
const lockTry = 2 * time.Second

// onConn runs fn on a connection of the pool of its own: lock_timeout,
// which the purge's statements set, is the connection's, and it is reset
// before the connection goes back.
func (d *DB) onConn(ctx context.Context, fn func(*sql.Conn) (bool, error)) (bool, error) {
	conn, err := d.sql.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	defer conn.ExecContext(context.WithoutCancel(ctx), "RESET lock_timeout") //nolint:errcheck // only a broken connection fails it
	return fn(conn)
}

func setLockTimeout(ctx context.Context, conn *sql.Conn, timeout time.Duration) error {
	_, err := conn.ExecContext(ctx, fmt.Sprintf("SET lock_timeout = %d", max(timeout.Milliseconds(), 1)))
	return err
}

// vacuum runs full (the rewrite) when rewrite is set and plain otherwise.
// A rewrite tries to take its table's lock for lockTry at a time, for at
// most wait in all; when readers keep the table longer, it runs plain,
// which frees what it can now, and says the table was locked. A plain
// vacuum waits for its lock (a session holding SHARE UPDATE EXCLUSIVE: a
// VACUUM or CREATE INDEX CONCURRENTLY of a DBA's in an open transaction)
// at most wait too, and says the table was locked if it was not granted.
// The lock timeout it leaves on conn bounds what follows on it.
func vacuum(ctx context.Context, conn *sql.Conn, rewrite bool, wait time.Duration, full, plain string) (locked bool, err error) {
	if !rewrite {
		if err := setLockTimeout(ctx, conn, wait); err != nil {
			return false, err
		}
		_, err := conn.ExecContext(ctx, plain)
		if isDeadlock(err) { // another purge's vacuum or ANALYZE: once more
			_, err = conn.ExecContext(ctx, plain)
		}
		if isLockTimeout(err) {
			return true, nil
		}
		return false, err
	}
	for deadline := time.Now().Add(wait); ; {
		if err := setLockTimeout(ctx, conn, min(lockTry, time.Until(deadline))); err != nil {
			return false, err
		}
		_, err = conn.ExecContext(ctx, full)
		// A deadlock with another purge (a replica's cleanup run beside
		// this delete run: both rewrite pg_statistic and analyze) is a
		// lock not granted this time: tried again.
		if !isLockTimeout(err) && !isDeadlock(err) {
			return false, err
		}
		pause := min(time.Second, time.Until(deadline))
		if pause <= 0 {
			break
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(pause):
		}
	}
	if _, err = conn.ExecContext(ctx, plain); isLockTimeout(err) {
		err = nil // not even a plain VACUUM could start: the mark stays
	}
	return true, err
}

// horizon is what keeps a vacuum from removing deleted rows' old
// versions: server processes (pid the first of them) and replication
// slots or prepared transactions. All are named: a slot behind a busy
// process is the operator's to find too.
type horizon struct{ pid, procs, slots int }

func (h horizon) held() bool { return h.procs+h.slots > 0 }

// with is what h or o found: both are named (a process that held the
// tables' horizon may have ended before the slot holding the catalogs').
func (h horizon) with(o horizon) horizon {
	if h.procs == 0 || (o.procs > 0 && o.procs >= h.procs) {
		h.pid, h.procs = o.pid, o.procs
	}
	h.slots = max(h.slots, o.slots)
	return h
}

func (h horizon) String() string {
	var who []string
	switch {
	case h.procs == 1:
		who = append(who, fmt.Sprintf("server process %d", h.pid))
	case h.procs > 1:
		who = append(who, fmt.Sprintf("server process %d and %d other(s)", h.pid, h.procs-1))
	}
	if h.slots > 0 {
		who = append(who, "a replication slot or a prepared transaction")
	}
	return strings.Join(who, ", and ")
}

// waitHorizon waits, up to wait, until no transaction that began before
// now is left (for catalog, no logical slot either), and returns what
// still holds one, if anything.
func (d *DB) waitHorizon(ctx context.Context, wait time.Duration, catalog bool) (horizon, error) {
	var next int64
	if err := d.sql.QueryRowContext(ctx, "SELECT txid_snapshot_xmax(txid_current_snapshot())").Scan(&next); err != nil {
		return horizon{}, err
	}
	deadline := time.Now().Add(wait)
	for pause := 10 * time.Millisecond; ; pause = min(2*pause, time.Second) {
		var h horizon
		if err := d.sql.QueryRowContext(ctx, horizonHolders, next, catalog).Scan(&h.pid, &h.procs, &h.slots); err != nil {
			return horizon{}, err
		}
		if !h.held() {
			return h, nil
		}
		pause = min(pause, time.Until(deadline))
		if pause <= 0 {
			return h, nil
		}
		select {
		case <-ctx.Done():
			return horizon{}, ctx.Err()
		case <-time.After(pause):
		}
	}
}

// isLockTimeout reports PostgreSQL's lock_not_available (55P03).
func isLockTimeout(err error) bool { return pgCode(err) == "55P03" }

// isDeadlock reports PostgreSQL's deadlock_detected (40P01).
func isDeadlock(err error) bool { return pgCode(err) == "40P01" }

// pgCode is the SQLSTATE of a PostgreSQL error, or "".
func pgCode(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// quoteIdent quotes an identifier, doubling any quote inside it.
func quoteIdent(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
