// Package demodata creates a realistic synthetic data set over the ACC data
// model — recipients with rows in every standard table, shared deliveries,
// delivery log messages, tracked URLs, lists and services, and the custom cus:transaction / cus:transactionDetail
// tables when those schemas are loaded — for demos and benchmarks. Subjects
// are demo-<n>@example.com; everything is deterministic for a given seed.
// A field some namespace reconciles on is stored in that namespace's
// canonical form, as xtk:persist#Write stores it, so requests reach it.
package demodata

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/campaign-privacy/campaign-privacy/internal/canon"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/schemas"
)

// Email returns the email of the n-th demo recipient (1-based, across runs).
func Email(n int64) string { return fmt.Sprintf("demo-%d@example.com", n) }

var (
	firstNames = []string{"Ana", "Ben", "Chloé", "Dmitri", "Eva", "Farid", "Grace", "Hiro", "Inès", "João", "Kim", "Lena", "Mateo", "Nora", "Omar", "Priya"}
	lastNames  = []string{"Silva", "Müller", "Martin", "Rossi", "Nowak", "Kowalski", "García", "Dubois", "Smith", "Tanaka", "Okafor", "Larsen"}
	cities     = []string{"Lisboa", "Berlin", "Paris", "Milano", "Kraków", "Madrid", "London", "Osaka"}
)

// logMessages are the shared delivery log messages (nms:broadLogMsg) the
// demo logs point at: ACC's qualification of what a delivery answered.
var logMessages = []struct {
	text                       string
	failureType, failureReason int64
}{
	{"Message sent", 0, 0},
	{"550 5.1.1 Mailbox unavailable", 2, 1},
	{"452 4.2.2 Mailbox full", 1, 5},
	{"421 4.7.0 Try again later", 1, 3},
}

// trackedURLs are the shared tracked URLs (nms:trackingUrl) the demo
// tracking logs point at; the logs are opens, the first one.
var trackedURLs = []struct {
	label  string
	typ    int64
	source string
}{
	{"Open", 2, ""},
	{"Mirror page", 6, ""},
	{"Shop", 1, "https://www.example.com/shop"},
}

// Generator writes batches of recipients and their rows.
type Generator struct {
	DB       *store.DB
	Registry *schemas.Registry
	Seed     uint64
	Batch    int // recipients per transaction
	Now      time.Time
	// NoAnalyze leaves the tables without planner statistics after the
	// bulk load (a benchmark of the workflows on a server with autovacuum
	// off); by default Generate ends with an ANALYZE of what it filled.
	NoAnalyze bool
}

// table holds the rows of one table for one batch.
type table struct {
	name string
	cols []string
	rows [][]any
	next int64
}

// Generate adds n recipients and returns the first and last recipient number.
func (g *Generator) Generate(ctx context.Context, n int, progress func(done int)) (first, last int64, err error) {
	if g.Batch <= 0 {
		g.Batch = 2000
	}
	if g.Now.IsZero() {
		g.Now = time.Now().UTC()
	}
	rng := rand.New(rand.NewPCG(g.Seed, 0x5eed))
	next := func(tbl string) (int64, error) { return g.DB.MaxID(ctx, tbl) }
	rules, err := g.rules(ctx)
	if err != nil {
		return 0, 0, err
	}
	insert := func(tbl string, cols []string, rows [][]any) error {
		if err := rules.apply(tbl, cols, rows); err != nil {
			return err
		}
		return g.DB.InsertRows(ctx, tbl, cols, rows)
	}
	// Shared, non-personal tables: deliveries, delivery log messages,
	// tracked URLs, lists, services.
	shared := map[string]int64{}
	for _, s := range []struct {
		table string
		n     int
		cols  []string
		row   func(i int) []any
	}{
		{"nms_delivery", 20, []string{"label", "internal_name", "message_type", "created"}, func(i int) []any {
			return []any{fmt.Sprintf("Newsletter %d", i), fmt.Sprintf("DM%d", i), int64(i % 3), g.Now}
		}},
		{"nms_broad_log_msg", len(logMessages), []string{"text", "failure_type", "failure_reason", "created"}, func(i int) []any {
			m := logMessages[i-1]
			return []any{m.text, m.failureType, m.failureReason, g.Now}
		}},
		{"nms_tracking_url", len(trackedURLs), []string{"label", "type", "source_url", "created"}, func(i int) []any {
			u := trackedURLs[i-1]
			return []any{u.label, u.typ, u.source, g.Now}
		}},
		{"nms_group", 5, []string{"label", "name", "created"}, func(i int) []any { return []any{fmt.Sprintf("List %d", i), fmt.Sprintf("list%d", i), g.Now} }},
		{"nms_service", 3, []string{"label", "name", "created"}, func(i int) []any { return []any{fmt.Sprintf("Service %d", i), fmt.Sprintf("svc%d", i), g.Now} }},
	} {
		base, err := next(s.table)
		if err != nil {
			return 0, 0, err
		}
		var rows [][]any
		for i := 1; i <= s.n; i++ {
			rows = append(rows, append([]any{base + int64(i)}, s.row(i)...))
		}
		if err := insert(s.table, append([]string{"id"}, s.cols...), rows); err != nil {
			return 0, 0, err
		}
		shared[s.table] = base + 1
	}
	_, hasTx := g.Registry.Schema("cus:transaction")
	_, hasDetail := g.Registry.Schema("cus:transactionDetail")
	rcpBase, err := next("nms_recipient")
	if err != nil {
		return 0, 0, err
	}
	first = rcpBase + 1
	order := []string{"nms_recipient", "nms_broad_log_rcp", "nms_tracking_log_rcp", "nms_broad_log_event_histo", "nms_rcp_grp_rel",
		"nms_visitor", "nms_proposition_visitor", "nms_sub_histo", "nms_subscription", "nms_proposition_rcp", "cus_transaction", "cus_transaction_detail"}
	for done := 0; done < n; {
		size := min(g.Batch, n-done)
		tables := map[string]*table{}
		add := func(name string, cols []string, row ...any) int64 {
			t := tables[name]
			if t == nil {
				base, _ := next(name)
				t = &table{name: name, cols: append([]string{"id"}, cols...), next: base}
				tables[name] = t
			}
			t.next++
			t.rows = append(t.rows, append([]any{t.next}, row...))
			return t.next
		}
		for i := 0; i < size; i++ {
			num := rcpBase + int64(done+i) + 1
			day := g.Now.AddDate(0, 0, -rng.IntN(700))
			rid := add("nms_recipient", []string{"email", "phone", "mobile_phone", "first_name", "last_name", "birth_date", "gender", "company", "account", "city", "country", "created", "last_modified"},
				Email(num), fmt.Sprintf("+4930%07d", num%10_000_000), fmt.Sprintf("+4917%08d", num%100_000_000),
				firstNames[rng.IntN(len(firstNames))], lastNames[rng.IntN(len(lastNames))],
				time.Date(1950+rng.IntN(55), time.Month(1+rng.IntN(12)), 1+rng.IntN(28), 0, 0, 0, 0, time.UTC).Format("2006-01-02"),
				int64(rng.IntN(3)), "Example Corp", fmt.Sprintf("ACC-%08d", num), cities[rng.IntN(len(cities))], "EU", day, day)
			for j := 0; j < 3; j++ {
				delivery := shared["nms_delivery"] + int64(rng.IntN(20))
				at := day.Add(time.Duration(j+1) * 24 * time.Hour)
				bl := add("nms_broad_log_rcp", []string{"recipient_id", "delivery_id", "address", "status", "msg_id", "delivery_label", "delivery_type", "contact_date", "event_date", "last_modified"},
					rid, delivery, Email(num), int64(1+rng.IntN(3)), shared["nms_broad_log_msg"]+int64(rng.IntN(len(logMessages))), "Newsletter", int64(0), at, at, at)
				if j < 2 {
					add("nms_tracking_log_rcp", []string{"recipient_id", "broad_log_id", "delivery_id", "url_id", "log_date", "url_label", "url_type", "user_agent", "source_ip"},
						rid, bl, delivery, shared["nms_tracking_url"], at.Add(time.Hour), "Open", int64(2), "Mozilla/5.0", "192.0.2.1")
				}
			}
			add("nms_broad_log_event_histo", []string{"recipient_id", "delivery_id", "address", "status", "event_type", "event_date"},
				rid, shared["nms_delivery"], Email(num), int64(1), "welcome", day)
			add("nms_rcp_grp_rel", []string{"recipient_id", "rcp_group_id", "created"}, rid, shared["nms_group"]+int64(rng.IntN(5)), day)
			vid := add("nms_visitor", []string{"recipient_id", "visitor_id", "referrer", "created"}, rid, fmt.Sprintf("v-%d", num), "https://www.example.com/", day)
			add("nms_proposition_visitor", []string{"visitor_id", "offer_label", "status", "event_date"}, vid, "Spring offer", int64(1), day)
			svc := shared["nms_service"] + int64(rng.IntN(3))
			add("nms_subscription", []string{"recipient_id", "service_id", "created"}, rid, svc, day)
			add("nms_sub_histo", []string{"recipient_id", "service_id", "action", "date"}, rid, svc, int64(1), day)
			add("nms_sub_histo", []string{"recipient_id", "service_id", "action", "date"}, rid, svc, int64(0), day.Add(48*time.Hour))
			add("nms_proposition_rcp", []string{"recipient_id", "offer_label", "status", "event_date"}, rid, "Loyalty offer", int64(2), day)
			if hasTx {
				for k := 0; k < 2; k++ {
					tx := add("cus_transaction", []string{"recipient_id", "amount", "date", "store"}, rid, float64(5+rng.IntN(200)), day, cities[rng.IntN(len(cities))])
					if hasDetail {
						add("cus_transaction_detail", []string{"transaction_id", "product", "quantity", "price"}, tx, "Coffee beans", int64(1+rng.IntN(3)), 9.5)
					}
				}
			}
		}
		// One transaction a batch: an interrupted run leaves whole people.
		var batch []store.TableRows
		for _, name := range order {
			if t := tables[name]; t != nil {
				if err := rules.apply(t.name, t.cols, t.rows); err != nil {
					return 0, 0, fmt.Errorf("%s: %w", name, err)
				}
				batch = append(batch, store.TableRows{Table: t.name, Columns: t.cols, Rows: t.rows})
			}
		}
		if err := g.DB.InsertTables(ctx, batch); err != nil {
			return 0, 0, err
		}
		done += size
		if progress != nil {
			progress(done)
		}
	}
	if !g.NoAnalyze {
		// A bulk load leaves PostgreSQL without statistics until
		// autovacuum's next pass (never, where it is off).
		filled := []string{"nms_delivery", "nms_broad_log_msg", "nms_tracking_url", "nms_group", "nms_service"}
		for _, name := range order {
			if (name != "cus_transaction" || hasTx) && (name != "cus_transaction_detail" || hasDetail) {
				filled = append(filled, name)
			}
		}
		if err := g.DB.Analyze(ctx, filled); err != nil {
			return 0, 0, err
		}
	}
	return first, rcpBase + int64(n), nil
}

// fieldRule is how a namespaced column is stored: its namespace's rule.
type fieldRule struct {
	column, rule, region string
	length               int
}

// fieldRules are the namespaced columns by table.
type fieldRules map[string][]fieldRule

// rules reads the namespaces now: the rows are inserted straight into the
// tables, after the namespaces' rewrites, so nothing would bring them to
// canonical form later (the namespaces are at canon.Version already).
func (g *Generator) rules(ctx context.Context) (fieldRules, error) {
	nss, err := g.DB.FindNamespaces(ctx)
	if err != nil {
		return nil, err
	}
	out := fieldRules{}
	for _, ns := range nss {
		sc, ok := g.Registry.Schema(ns.TargetSchema)
		if !ok || sc.Data == nil {
			continue // a custom schema removed: nothing of it is generated
		}
		a, ok := sc.Data.Attribute(strings.TrimPrefix(ns.ReconciliationKey, "@"))
		if !ok {
			continue
		}
		r := fieldRule{column: a.SQLName, rule: ns.MatchRule, region: ns.DefaultRegion, length: a.Length}
		if !slices.Contains(out[sc.Data.Table], r) {
			out[sc.Data.Table] = append(out[sc.Data.Table], r)
		}
	}
	return out, nil
}

// apply brings the namespaced text values of rows (columns cols of table)
// to canonical form (canon.Stored), in place. A value whose canonical form
// does not fit its field is an error, not a value no request reaches.
func (fr fieldRules) apply(table string, cols []string, rows [][]any) error {
	for _, r := range fr[table] {
		i := slices.Index(cols, r.column)
		if i < 0 {
			continue
		}
		for _, row := range rows {
			text, ok := row[i].(string)
			if !ok {
				continue
			}
			c := canon.Stored(r.rule, r.region, text)
			if r.length > 0 && utf8.RuneCountInString(c) > r.length {
				return fmt.Errorf("%s.%s: a generated value is longer than the field's %d characters under the %s rule", table, r.column, r.length, r.rule)
			}
			if c == "" {
				row[i] = nil
			} else {
				row[i] = c
			}
		}
	}
	return nil
}
