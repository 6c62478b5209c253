package store_test

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// TestDeliveryLogMessageKeepsItsColumn: nms:broadLogRcp's message was an
// attribute msgId before it became ACC's link msg (to nms:broadLogMsg).
// The link keeps the attribute's column, msg_id: a database made before
// keeps its values, read as the link's, with no migration, and gets the
// new shared table nms_broad_log_msg at its next start.
func TestDeliveryLogMessageKeepsItsColumn(t *testing.T) {
	before, err := schemas.Load(fstest.MapFS{
		"nms_recipient.xml": {Data: []byte(`<schema namespace="nms" name="recipient"><element name="recipient" autopk="true">
  <attribute name="email" type="string" length="128"/></element></schema>`)},
		"nms_delivery.xml": {Data: []byte(`<schema namespace="nms" name="delivery"><element name="delivery" autopk="true">
  <attribute name="label" type="string" length="128"/></element></schema>`)},
		"nms_broadLogRcp.xml": {Data: []byte(`<schema namespace="nms" name="broadLogRcp"><element name="broadLogRcp" autopk="true">
  <attribute name="address" type="string" length="128"/><attribute name="msgId" type="long"/>
  <element name="recipient" type="link" target="nms:recipient" revIntegrity="own"/>
  <element name="delivery" type="link" target="nms:delivery"/></element></schema>`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	now, err := schemas.Default()
	if err != nil {
		t.Fatal(err)
	}
	bl, _ := now.Schema("nms:broadLogRcp")
	msg, ok := bl.Data.Link("msg")
	if !ok || msg.Target != "nms:broadLogMsg" || msg.SQLName != "msg_id" {
		t.Fatalf("nms:broadLogRcp's link msg: %+v", msg)
	}
	if _, ok := bl.Data.Attribute("msgId"); ok {
		t.Fatal("nms:broadLogRcp still has the attribute msgId")
	}
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, dialect, nil)
			if err := db.SyncDataModel(ctx, before); err != nil {
				t.Fatal(err)
			}
			sql := storetest.SQLOf(t, db)
			if err := sql.InsertRow(ctx, "nms_broad_log_rcp", map[string]any{"address": "someone@example.com", "msg_id": 186438}); err != nil {
				t.Fatal(err)
			}
			if err := db.SyncDataModel(ctx, now); err != nil {
				t.Fatal(err)
			}
			if err := db.CheckViews(ctx, now); err != nil {
				t.Fatal(err)
			}
			if v, err := sql.Int(ctx, "SELECT msg_id FROM nms_broad_log_rcp"); err != nil || v != 186438 {
				t.Fatalf("msg_id after the upgrade: %d, %v", v, err)
			}
			if cols, _ := db.ExistingColumnsForTest(ctx, "nms_broad_log_msg"); !cols["text"] || !cols["failure_type"] {
				t.Fatalf("nms_broad_log_msg: %v", cols)
			}
		})
	}
}
