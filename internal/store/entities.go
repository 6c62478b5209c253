package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"gorm.io/gorm"

	"github.com/campaign-privacy/campaign-privacy/internal/apperr"
)

// Write operations on data-model rows, as xtk:persist#Write asks for them.
const (
	OpInsert         = "insert"
	OpUpdate         = "update"
	OpInsertOrUpdate = "insertOrUpdate"
	OpDelete         = "delete"
)

// Dependent is a table whose rows point at the written table through an
// "own" link: deleting a row they point at would orphan them.
type Dependent struct {
	Schema string // for the message, "nms:broadLogRcp"
	Table  string
	Column string
}

// EntityWrite is one row to insert, update or delete. Table and column
// names come from the schema registry (validated identifiers); values are
// always bound arguments.
type EntityWrite struct {
	Schema     string // "nms:recipient", for messages
	Table      string
	Op         string
	Key        map[string]any // column → value that identifies the row
	Values     map[string]any // column → value to store
	OnInsert   map[string]any // extra values when the row is inserted (created, lastModified)
	Dependents []Dependent
}

// WriteEntities applies every write in one transaction: all or nothing.
// Errors of a collection name the record (1-based) that failed. The
// transaction first checks that the namespaces on the written schemas,
// whose match rules shaped the values, are still namespaces (every one of
// them, as read: none changed, none removed, none created meanwhile —
// ErrNamespaceRewritten), and holds them so until its commit on
// PostgreSQL: a namespace update or creation waits, and its rewrite then
// sees these rows.
// It runs as a bulk write (writegate.go): within WriteBudget, and on
// SQLite behind the logon and create paths' writes.
func (d *DB) WriteEntities(ctx context.Context, writes []EntityWrite, namespaces []Namespace) error {
	return d.bulkWrite(ctx, func(ctx context.Context) error { return d.writeEntities(ctx, writes, namespaces) })
}

func (d *DB) writeEntities(ctx context.Context, writes []EntityWrite, namespaces []Namespace) error {
	return d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var written []string
		for _, w := range writes {
			if !slices.Contains(written, w.Schema) {
				written = append(written, w.Schema)
			}
		}
		if err := d.namespacesUnchanged(tx, written, namespaces); err != nil {
			return err
		}
		for i, w := range writes {
			err := d.writeEntity(tx, w)
			if err == nil {
				continue
			}
			var e *apperr.Error
			if !errors.As(err, &e) {
				e = translate(err, "Record").(*apperr.Error)
			}
			if len(writes) > 1 {
				return &apperr.Error{Code: e.Code, Message: fmt.Sprintf("Record %d: %s", i+1, e.Message), Err: err}
			}
			return e
		}
		return nil
	})
}

func (d *DB) writeEntity(tx *gorm.DB, w EntityWrite) error {
	var id *int64
	if w.Op != OpInsert {
		if len(w.Key) == 0 {
			return apperr.Errorf(apperr.Invalid, "A %s of %s needs a key (_key or @id).", w.Op, w.Schema)
		}
		cols := sortedKeys(w.Key)
		var where []string
		var args []any
		for _, c := range cols {
			where = append(where, quote(c)+" = ?")
			args = append(args, w.Key[c])
		}
		var ids []int64
		if err := tx.Raw("SELECT id FROM "+quote(w.Table)+" WHERE "+strings.Join(where, " AND ")+" LIMIT 2", args...).Scan(&ids).Error; err != nil {
			return err
		}
		switch {
		case len(ids) > 1:
			return apperr.Errorf(apperr.Conflict, "The key of this %s matches more than one record of %s.", w.Op, w.Schema)
		case len(ids) == 1:
			id = &ids[0]
		case w.Op == OpInsertOrUpdate:
		default:
			return apperr.Errorf(apperr.NotFound, "No record of %s matches the key.", w.Schema)
		}
	}
	switch {
	case w.Op == OpDelete:
		for _, dep := range w.Dependents {
			var n int64
			if err := tx.Raw("SELECT COUNT(*) FROM "+quote(dep.Table)+" WHERE "+quote(dep.Column)+" = ?", *id).Scan(&n).Error; err != nil {
				return err
			}
			if n > 0 {
				return apperr.Errorf(apperr.Conflict, "%d record(s) of %s belong to this %s record: delete them first, or use a privacy delete request.", n, dep.Schema, w.Schema)
			}
		}
		return tx.Exec("DELETE FROM "+quote(w.Table)+" WHERE id = ?", *id).Error
	case id != nil:
		if len(w.Values) == 0 {
			return nil
		}
		cols := sortedKeys(w.Values)
		var set []string
		var args []any
		for _, c := range cols {
			set = append(set, quote(c)+" = ?")
			args = append(args, w.Values[c])
		}
		args = append(args, *id)
		return tx.Exec("UPDATE "+quote(w.Table)+" SET "+strings.Join(set, ", ")+" WHERE id = ?", args...).Error
	default:
		values := map[string]any{}
		for c, v := range w.Key {
			values[c] = v
		}
		for c, v := range w.OnInsert {
			values[c] = v
		}
		for c, v := range w.Values {
			values[c] = v
		}
		delete(values, "id")
		if len(values) == 0 {
			return tx.Exec("INSERT INTO " + quote(w.Table) + " DEFAULT VALUES").Error
		}
		cols := sortedKeys(values)
		var quoted, marks []string
		var args []any
		for _, c := range cols {
			quoted = append(quoted, quote(c))
			marks = append(marks, "?")
			args = append(args, values[c])
		}
		return tx.Exec("INSERT INTO "+quote(w.Table)+" ("+strings.Join(quoted, ", ")+") VALUES ("+strings.Join(marks, ", ")+")", args...).Error
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// CountRows counts the rows of table whose column equals value (all rows
// when column is empty). Table and column come from the schema registry.
func (d *DB) CountRows(ctx context.Context, table, column string, value any) (int64, error) {
	var n int64
	q := "SELECT COUNT(*) FROM " + quote(table)
	var args []any
	if column != "" {
		q += " WHERE " + quote(column) + " = ?"
		args = append(args, value)
	}
	err := d.db.WithContext(ctx).Raw(q, args...).Scan(&n).Error
	return n, translate(err, "Record")
}

// MaxID returns the largest id of table (0 when empty).
func (d *DB) MaxID(ctx context.Context, table string) (int64, error) {
	var n *int64
	err := d.db.WithContext(ctx).Raw("SELECT MAX(id) FROM " + quote(table)).Scan(&n).Error
	if err != nil || n == nil {
		return 0, translate(err, "Record")
	}
	return *n, nil
}

// InsertRows bulk-inserts rows (explicit ids included) with multi-row
// INSERTs in one transaction; demo-data and benchmarks use it. Afterwards,
// on PostgreSQL, the id sequence is moved past the largest id so that
// later inserts do not collide.
func (d *DB) InsertRows(ctx context.Context, table string, columns []string, rows [][]any) error {
	return d.InsertTables(ctx, []TableRows{{Table: table, Columns: columns, Rows: rows}})
}

// TableRows are rows to insert into a table (InsertTables).
type TableRows struct {
	Table   string
	Columns []string
	Rows    [][]any
}

// InsertTables inserts the rows of several tables in one transaction, in
// their order (parents first): all or nothing, so an interrupted bulk load
// (demo-data) never leaves a recipient without its linked rows.
func (d *DB) InsertTables(ctx context.Context, tables []TableRows) error {
	err := d.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		for _, t := range tables {
			if err := d.insertRows(tx, t.Table, t.Columns, t.Rows); err != nil {
				return err
			}
		}
		return nil
	})
	return translate(err, "Record")
}

func (d *DB) insertRows(tx *gorm.DB, table string, columns []string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	quoted := make([]string, len(columns))
	for i, c := range columns {
		quoted[i] = quote(c)
	}
	marks := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	per := max(1, min(4000, d.statementParams())/len(columns))
	for start := 0; start < len(rows); start += per {
		end := min(start+per, len(rows))
		var args []any
		values := make([]string, 0, end-start)
		for _, r := range rows[start:end] {
			values = append(values, marks)
			args = append(args, r...)
		}
		q := "INSERT INTO " + quote(table) + " (" + strings.Join(quoted, ", ") + ") VALUES " + strings.Join(values, ", ")
		if err := tx.Exec(q, args...).Error; err != nil {
			return err
		}
	}
	if d.dialect == Postgres {
		return tx.Exec("SELECT setval(pg_get_serial_sequence(?, 'id'), (SELECT MAX(id) FROM "+quote(table)+"))", table).Error
	}
	return nil
}
