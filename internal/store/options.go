package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// OptionDatabaseID names the instance's database identifier, as ACC names
// the option (GetOption("XtkDatabaseId")).
const OptionDatabaseID = "XtkDatabaseId"

// instanceOption is one row of instance_options.
type instanceOption struct {
	Name  string `gorm:"primaryKey"`
	Value string
}

// TableName pins the table name for gorm.
func (instanceOption) TableName() string { return "instance_options" }

// FindOption returns an instance option's value; NotFound when it was never
// written.
func (d *DB) FindOption(ctx context.Context, name string) (string, error) {
	var o instanceOption
	err := d.reader.WithContext(ctx).Where("name = ?", name).Take(&o).Error
	return o.Value, translate(err, "Option")
}

// DatabaseID returns the instance's database identifier: "u" and 40
// upper-case hex digits, the form real ACC servers report
// ("uFE80000000000000F1FA913DD7CC7C480041161C" in acc-js-sdk's captured
// responses). It is drawn at random the first time and stored in
// instance_options; replicas that start together race on the primary key
// and all read the one that won, so the id is the same on every replica
// and across restarts for as long as the database lives.
func (d *DB) DatabaseID(ctx context.Context) (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return d.ClaimOption(ctx, OptionDatabaseID, "u"+strings.ToUpper(hex.EncodeToString(b)))
}

// ClaimOption writes an instance option unless it is written already, and
// returns the value stored: replicas that start together race on the
// primary key and all read the one that won.
func (d *DB) ClaimOption(ctx context.Context, name, value string) (string, error) {
	err := d.db.WithContext(ctx).Exec("INSERT INTO instance_options (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
		name, value).Error
	if err != nil {
		return "", translate(err, "Option")
	}
	return d.FindOption(ctx, name)
}

// ReplaceOption sets an instance option to value if it still holds old,
// and reports whether it did (another replica may have changed it first).
func (d *DB) ReplaceOption(ctx context.Context, name, old, value string) (bool, error) {
	res := d.db.WithContext(ctx).Exec("UPDATE instance_options SET value = ? WHERE name = ? AND value = ?", value, name, old)
	return res.RowsAffected == 1, translate(res.Error, "Option")
}
