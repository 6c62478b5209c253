package servertest

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// DeliveryLogColumns are the nms_broad_log_rcp columns of DeliveryLogs'
// rows, in order.
var DeliveryLogColumns = []string{"id", "recipient_id", "address", "status", "msg_id",
	"delivery_label", "delivery_type", "contact_date", "event_date", "last_modified"}

// campaigns are the delivery labels of DeliveryLogs.
var campaigns = []string{"Monthly newsletter", "Black Friday offer", "Welcome series, step 2", "Abandoned cart reminder",
	"Loyalty points update", "Summer sale: last days", "Back in stock", "Your order has shipped", "We miss you",
	"Birthday voucher", "Spring collection", "Webinar invitation", "Service update", "Price drop alert"}

// DeliveryLogs returns a generator of recipient 1's delivery logs, ids 1,
// 2, …, at email, over the five years before now. They vary as a real
// subject's do (dates, statuses, message ids, channels, campaigns), always
// the same way: the subject's file (about 330 bytes a row) compresses as
// a real one does, about 4× in LZ4, not as one row repeated.
func DeliveryLogs(email string, now time.Time) func() []any {
	rng := rand.New(rand.NewPCG(1, 2))
	at := now.UTC().AddDate(-5, 0, 0).Truncate(time.Millisecond)
	id := int64(0)
	return func() []any {
		id++
		at = at.Add(time.Duration(rng.IntN(4*3600)) * time.Second)
		event := at.Add(time.Duration(rng.IntN(600_000)) * time.Millisecond)
		label := campaigns[rng.IntN(len(campaigns))] + ", edition " + strconv.Itoa(1+rng.IntN(400))
		return []any{id, int64(1), email, int64(1 + rng.IntN(7)), rng.Int64N(1 << 31),
			label, int64(rng.IntN(3)), at, event, event.Add(time.Duration(rng.IntN(3_600_000)) * time.Millisecond)}
	}
}

// VariedSubject stores one recipient, BigSubjectEmail, with logs of
// DeliveryLogs' delivery logs: a file of about 330 bytes a log that
// compresses as a real one does (BigSubject's logs differ only by a
// number).
func (e *Env) VariedSubject(t testing.TB, logs int) {
	t.Helper()
	ctx := context.Background()
	if err := e.DB.InsertRows(ctx, "nms_recipient", []string{"id", "email"}, [][]any{{int64(1), BigSubjectEmail}}); err != nil {
		t.Fatal(err)
	}
	next := DeliveryLogs(BigSubjectEmail, time.Now())
	for from := 0; from < logs; from += 10_000 {
		rows := make([][]any, 0, min(10_000, logs-from))
		for range cap(rows) {
			rows = append(rows, next())
		}
		if err := e.DB.InsertRows(ctx, "nms_broad_log_rcp", DeliveryLogColumns, rows); err != nil {
			t.Fatal(err)
		}
	}
}
