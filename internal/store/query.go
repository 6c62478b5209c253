package store

import "context"

// query runs one statement and calls row once per result row, in order,
// with the row's values as the driver returns them (int64, float64, bool,
// string, []byte, time.Time or nil; SQLite may return datetimes as
// strings). Every value is one of args, bound with "?" placeholders
// (rebind rewrites them for PostgreSQL). values is reused for the next
// row: row must not keep it. An error returned by row stops the scan and
// is returned as is.
func (d *DB) query(ctx context.Context, sql string, args []any, row func(values []any) error) error {
	rows, err := d.readSQL.QueryContext(ctx, d.rebind(sql), args...)
	if err != nil {
		return translate(err, "Query")
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return translate(err, "Query")
	}
	values := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range values {
		ptrs[i] = &values[i]
	}
	for rows.Next() {
		clear(values)
		if err := rows.Scan(ptrs...); err != nil {
			return translate(err, "Query")
		}
		if err := row(values); err != nil {
			return err
		}
	}
	return translate(rows.Err(), "Query")
}
