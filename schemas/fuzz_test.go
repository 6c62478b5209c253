package schemas_test

import (
	"context"
	"testing"
	"testing/fstest"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// FuzzCustomSchema: any bytes as a custom schema file (CP_SCHEMAS_DIR)
// either are refused with an error or give a registry whose data model
// SQLite creates without an SQL error; never a panic.
func FuzzCustomSchema(f *testing.F) {
	for _, s := range []string{
		`<schema namespace="cus" name="contact"><element name="contact" autopk="true"><attribute name="email" type="string" length="128"/></element></schema>`,
		`<schema namespace="cus" name="transaction"><element name="transaction" autopk="true"><attribute name="amount" type="double"/><element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/></element></schema>`,
		`<schema namespace="nms" name="recipient" extendedSchema="nms:recipient"><element name="recipient"><attribute name="loyalty" type="long" sqlname="loyalty_pts"/></element></schema>`,
		`<schema namespace="cus" name="e"><enumeration name="s" basetype="byte"><value name="a" value="1"/></enumeration><element name="e" autopk="true"><attribute name="st" type="byte" enum="s"/><attribute name="d" type="date"/><attribute name="b" type="boolean" notNull="true"/></element></schema>`,
		`<schema namespace="cus" name="v"><element name="v" view="true" sqltable="nms_recipient"><attribute name="email" type="string"/></element></schema>`,
		`<schema namespace="cus" name="l"><element name="l" autopk="true"><element name="self" type="link" target="cus:l"/><element name="g" type="link" target="nms:group" integrity="own"/></element></schema>`,
		`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><schema/>`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		reg, err := schemas.New(fstest.MapFS{"cus_x.xml": {Data: data}})
		if err != nil {
			return
		}
		for _, s := range reg.Schemas() {
			_ = s.Document()
		}
		db := storetest.Open(t, "sqlite", time.Now)
		if err := db.SyncDataModel(context.Background(), reg); err != nil {
			t.Fatalf("schema accepted, but the data model is not created: %v\n%s", err, data)
		}
	})
}

// FuzzParseTime: what ParseTime accepts is a UTC time in years 1 to
// 9999 that reads back from its own formats (the service's answers).
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2024-01-31", "2024-01-31 12:00:00Z", "2024-01-31T12:00:00.123+02:00", "2024-01-31 12:00:00.5-07",
		"0001-01-01 00:30:00+01:00", "9999-12-31 23:30:00-01:00", " 2024-02-29 ", "2024-01-31 12:00", "2024-01-31 12:00:00,5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, ok := schemas.ParseTime(s)
		if !ok {
			return
		}
		if tm.Location() != time.UTC || tm.Year() < 1 || tm.Year() > 9999 {
			t.Fatalf("%q: %v", s, tm)
		}
		for _, out := range []string{schemas.FormatDateTime(tm), schemas.FormatXSDDateTime(tm)} {
			back, ok := schemas.ParseTime(out)
			if !ok || !back.Equal(tm.Truncate(time.Millisecond)) {
				t.Fatalf("%q is %v, written %q, read back %v (%v)", s, tm, out, back, ok)
			}
		}
		d := schemas.FormatDate(tm)
		if back, ok := schemas.ParseTime(d); !ok || schemas.FormatDate(back) != d {
			t.Fatalf("%q: date %q reads back as %v (%v)", s, d, back, ok)
		}
	})
}
