package store

import "context"

// ExistingColumnsForTest exposes existingColumns to the store's tests.
func (d *DB) ExistingColumnsForTest(ctx context.Context, table string) (map[string]bool, error) {
	return d.existingColumns(ctx, table)
}
