package metrics_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/servertest"
	"github.com/campaign-privacy/campaign-privacy/internal/storetest"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/session"
)

// scrape reads /metrics over HTTP, as Prometheus does, and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value returns the sample of family name whose labels include want
// (counter, gauge, or a histogram's count); -1 when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want ...string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if labels[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// delta is how much a sample moved between two scrapes (a missing sample
// counts as 0).
func delta(before, after map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	return max(value(after, name, labels...), 0) - max(value(before, name, labels...), 0)
}

// browser logs on to the console and downloads with its cookies.
func browser(t *testing.T, base, login, password string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/privacy/logon", url.Values{"login": {login}, "password": {password}, "target": {"/privacy/"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("console logon: %d", resp.StatusCode)
	}
	return c
}

func createCall(token, value, typ, confirm string) string {
	return servertest.Envelope("", `<m:CreateRequestByName xmlns:m="urn:nms:privacyRequest"><sessiontoken xsi:type="xsd:string">`+token+
		`</sessiontoken><namespaceName xsi:type="xsd:string">defaultNamespace1</namespaceName><reconciliationValue xsi:type="xsd:string">`+value+
		`</reconciliationValue><type xsi:type="xsd:int">`+typ+`</type><confirmDeletePending xsi:type="xsd:boolean">`+confirm+
		`</confirmDeletePending><regulation xsi:type="xsd:int">1</regulation></m:CreateRequestByName>`)
}

// TestMetricsMoveWithRealCalls drives the service through SOAP, the
// workflows and the console, and reads each effect back from /metrics.
func TestMetricsMoveWithRealCalls(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			ctx := context.Background()
			g := &demodata.Generator{DB: env.DB, Registry: env.Registry, Seed: 5}
			if _, _, err := g.Generate(ctx, 3, nil); err != nil {
				t.Fatal(err)
			}
			env.Operator(t, "zorro", "zorro-secret", session.RightPrivacy)
			env.Operator(t, "quentin", "quentin-secret", session.RightPrivacy)
			before := scrape(t, env.URL)
			for _, name := range []string{"go_goroutines", "process_cpu_seconds_total", "go_sql_open_connections", "campaign_privacy_build_info"} {
				if fams := before[name]; fams == nil {
					t.Errorf("%s is missing", name)
				}
			}
			if v := value(before, "campaign_privacy_build_info", "version", "test"); v != 1 {
				t.Errorf("build_info = %v", v)
			}
			if v := value(before, "campaign_privacy_requests", "status", "new"); v != 0 {
				t.Errorf("requests{new} on an empty store = %v, want 0 (every status is reported)", v)
			}

			// A logon, a wrong password three times (the third locks eve
			// out), an unknown login, a method nobody defines.
			token, _ := env.Logon(t, "zorro", "zorro-secret")
			for range 3 {
				if _, body := env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("quentin", "not-the-secret"))); !strings.Contains(body, "XSV-350012") {
					t.Fatalf("wrong password: %s", body)
				}
			}
			env.Post(t, "xtk:session#Logon", servertest.Envelope("", servertest.LogonCall("nobody@example.com", "secret")))
			env.Post(t, "xtk:session#Evil_ana_42", servertest.Envelope("", `<m:Evil_ana_42 xmlns:m="urn:xtk:session"/>`))
			// A bearer token where none is configured.
			if _, body := env.Post(t, "xtk:session#BearerTokenLogon", servertest.Envelope("", `<m:BearerTokenLogon xmlns:m="urn:xtk:session"><sessiontoken xsi:type="xsd:string"/><bearerToken xsi:type="xsd:string">eyJ.zorro.x</bearerToken></m:BearerTokenLogon>`)); !strings.Contains(body, "XSV-350012") {
				t.Fatalf("bearer logon: %s", body)
			}

			// A CreateRequestByName for a recipient, one for nobody, and
			// an hour later the oldest new request is an hour old.
			_, body := env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall(token, demodata.Email(1), "1", "false"))
			id, err := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
			if err != nil {
				t.Fatalf("create: %s", body)
			}
			_, body = env.Post(t, "nms:privacyRequest#CreateRequestByName", createCall(token, demodata.Email(2), "2", "true"))
			pending, err := strconv.ParseInt(servertest.Between(body, "<id xsi:type='xsd:int'>", "<"), 10, 64)
			if err != nil {
				t.Fatalf("create: %s", body)
			}
			env.Clock.Advance(time.Hour)
			mid := scrape(t, env.URL)
			if v := value(mid, "campaign_privacy_requests", "status", "new"); v != 2 {
				t.Errorf("requests{new} = %v, want 2", v)
			}
			if v := value(mid, "campaign_privacy_request_oldest_age_seconds", "status", "new"); v < 3600 || v > 3700 {
				t.Errorf("oldest new request is %v s old, want an hour", v)
			}

			// The workflows: collect writes the access file and sends the
			// two-step delete to review; then the file is downloaded.
			if _, err := env.Privacy.Run(ctx, privacy.Collect); err != nil {
				t.Fatal(err)
			}
			c := browser(t, env.URL, "zorro", "zorro-secret")
			resp, err := c.Get(env.URL + "/nms/gdpr.jssp?id=" + strconv.FormatInt(id, 10))
			if err != nil {
				t.Fatal(err)
			}
			file, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(file), "<gdprRequestData") {
				t.Fatalf("download: %d", resp.StatusCode)
			}

			after := scrape(t, env.URL)
			logon := []string{"method", "xtk:session#Logon"}
			checks := []struct {
				name   string
				labels []string
				want   float64
			}{
				{"campaign_privacy_soap_calls_total", append(logon, "outcome", "ok"), 1},
				{"campaign_privacy_soap_calls_total", append(logon, "outcome", "XSV-350012", "reason", "bad_logon"), 4},
				{"campaign_privacy_soap_calls_total", []string{"method", "unknown", "outcome", "SOP-330006", "reason", "unknown_method"}, 1},
				{"campaign_privacy_soap_calls_total", []string{"method", "nms:privacyRequest#CreateRequestByName", "outcome", "ok"}, 2},
				{"campaign_privacy_soap_call_duration_seconds", logon, 5},
				{"campaign_privacy_soap_call_duration_seconds", []string{"method", "nms:privacyRequest#CreateRequestByName"}, 2},
				{"campaign_privacy_logon_failures_total", []string{"reason", "wrong_password"}, 3},
				{"campaign_privacy_logon_failures_total", []string{"reason", "unknown_login"}, 1},
				{"campaign_privacy_logon_failures_total", []string{"reason", "locked"}, 0},
				{"campaign_privacy_logon_failures_total", []string{"reason", "bearer_token"}, 1},
				{"campaign_privacy_soap_calls_total", []string{"method", "xtk:session#BearerTokenLogon", "outcome", "XSV-350012"}, 1},
				{"campaign_privacy_logon_lockouts_total", nil, 1},
				{"campaign_privacy_workflow_runs_total", []string{"workflow", privacy.Collect, "result", "ok"}, 1},
				{"campaign_privacy_workflow_duration_seconds", []string{"workflow", privacy.Collect}, 1},
				{"campaign_privacy_workflow_requests_total", []string{"workflow", privacy.Collect, "outcome", "processed"}, 2},
				{"campaign_privacy_workflow_requests_total", []string{"workflow", privacy.Collect, "outcome", "failed"}, 0},
				{"campaign_privacy_export_bytes_downloaded_total", nil, float64(len(file))},
			}
			for _, c := range checks {
				if got := delta(before, after, c.name, c.labels...); got != c.want {
					t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if v := delta(before, after, "campaign_privacy_workflow_rows_exported_total"); v < 2 {
				t.Errorf("rows exported moved by %v, want the rows of two files", v)
			}
			if v := delta(before, after, "campaign_privacy_export_bytes_written_total"); v < float64(len(file)) {
				t.Errorf("export bytes written moved by %v, want at least the downloaded file's %d", v, len(file))
			}
			if v := value(after, "campaign_privacy_requests", "status", "complete"); v != 1 {
				t.Errorf("requests{complete} = %v, want 1", v)
			}
			if v := value(after, "campaign_privacy_requests", "status", "confirmDeletePending"); v != 1 {
				t.Errorf("requests{confirmDeletePending} = %v, want 1", v)
			}
			if v := value(after, "campaign_privacy_request_oldest_age_seconds", "status", "new"); v != 0 {
				t.Errorf("oldest new request after the collect: %v, want 0", v)
			}
			if v := value(after, "campaign_privacy_soap_calls_in_flight"); v != 0 {
				t.Errorf("calls in flight at rest = %v", v)
			}

			// A delete run: the confirmed two-step delete removes rows.
			caller := &session.Caller{OperatorID: 1, Login: "zorro", Rights: []string{session.RightPrivacy}}
			if err := env.Privacy.ConfirmDeletePending(ctx, caller, pending); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Privacy.Run(ctx, privacy.Delete); err != nil {
				t.Fatal(err)
			}
			end := scrape(t, env.URL)
			if v := delta(after, end, "campaign_privacy_workflow_rows_deleted_total"); v < 1 {
				t.Errorf("rows deleted moved by %v", v)
			}
			if v := delta(after, end, "campaign_privacy_workflow_runs_total", "workflow", privacy.Delete, "result", "ok"); v != 1 {
				t.Errorf("delete runs moved by %v", v)
			}
			// The run purged what it marked; a mark a dead process left
			// shows, with its age.
			if v := value(end, "campaign_privacy_residue_tables_pending"); v != 0 {
				t.Errorf("residue tables pending after the delete run: %v, want 0", v)
			}
			if err := storetest.SQLOf(t, env.DB).Exec(ctx, "INSERT INTO privacy_residue (table_name, since) VALUES (?, ?)",
				"nms_recipient", env.Clock.Now().UTC().Add(-2*time.Hour)); err != nil {
				t.Fatal(err)
			}
			marked := scrape(t, env.URL)
			if v := value(marked, "campaign_privacy_residue_tables_pending"); v != 1 {
				t.Errorf("residue tables pending with a mark left: %v, want 1", v)
			}
			if v := value(marked, "campaign_privacy_residue_oldest_age_seconds"); v < 7200 || v > 7300 {
				t.Errorf("oldest residue mark is %v s old, want two hours", v)
			}

			// No label carries a login, an e-mail, a password, an id, or
			// what a caller wrote as a method name.
			forbidden := []string{"zorro", "quentin", "nobody", "example.com", "secret", "Evil", demodata.Email(1), demodata.Email(2)}
			ids := map[string]bool{strconv.FormatInt(id, 10): true, strconv.FormatInt(pending, 10): true}
			methods := map[string]bool{metrics.UnknownMethod: true}
			for _, sc := range env.Registry.Schemas() {
				for _, m := range sc.Methods {
					methods[m.Service+"#"+m.Name] = true
				}
			}
			for name, f := range end {
				for _, m := range f.GetMetric() {
					for _, l := range m.GetLabel() {
						v := l.GetValue()
						if l.GetName() == "le" || l.GetName() == "quantile" {
							continue
						}
						for _, bad := range forbidden {
							if strings.Contains(strings.ToLower(v), strings.ToLower(bad)) {
								t.Errorf("%s{%s=%q} carries %q", name, l.GetName(), v, bad)
							}
						}
						if ids[v] {
							t.Errorf("%s{%s=%q} looks like an id", name, l.GetName(), v)
						}
						if l.GetName() == "method" && !methods[v] {
							t.Errorf("%s{method=%q} is not a method of the registry", name, v)
						}
					}
				}
			}
		})
	}
}

// get returns the status and body of a GET with extra headers.
func get(t *testing.T, u string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", u, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsOnlyToAllowedAddresses: /metrics answers only the addresses
// of CP_METRICS_SUBNETS, X-Forwarded-For believed only from a trusted proxy.
func TestMetricsOnlyToAllowedAddresses(t *testing.T) {
	zone := netzone.Zone{
		Allowed: []netip.Prefix{netip.MustParsePrefix("10.1.2.0/24")},
		Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
	}
	env := servertest.New(t, "sqlite", servertest.Options{MetricsZone: &zone})
	if status, body := get(t, env.URL+"/metrics"); status != http.StatusForbidden || strings.Contains(body, "campaign_privacy") {
		t.Fatalf("the loopback outside the zone: %d %.80s", status, body)
	}
	if status, _ := get(t, env.URL+"/metrics", "X-Forwarded-For", "203.0.113.9"); status != http.StatusForbidden {
		t.Fatalf("a client outside the zone through the proxy: %d", status)
	}
	// Through the trusted proxy, the rightmost untrusted hop decides: a
	// client cannot prepend an allowed address.
	if status, _ := get(t, env.URL+"/metrics", "X-Forwarded-For", "10.1.2.3, 203.0.113.9"); status != http.StatusForbidden {
		t.Fatalf("a forged hop was believed: %d", status)
	}
	if status, body := get(t, env.URL+"/metrics", "X-Forwarded-For", "10.1.2.3"); status != http.StatusOK || !strings.Contains(body, "campaign_privacy_build_info") {
		t.Fatalf("an allowed client through the proxy: %d", status)
	}
	// A proxy that is not trusted forwards nothing.
	untrusted := netzone.Zone{Allowed: zone.Allowed}
	env2 := servertest.New(t, "sqlite", servertest.Options{MetricsZone: &untrusted})
	if status, _ := get(t, env2.URL+"/metrics", "X-Forwarded-For", "10.1.2.3"); status != http.StatusForbidden {
		t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d", status)
	}
}

// TestHealthAndReadiness: /healthz says the process is up; /readyz says
// ready, then "database" with 503 once the database is gone, while
// /metrics still serves everything but what needs the database.
func TestHealthAndReadiness(t *testing.T) {
	for _, dialect := range storetest.Dialects {
		t.Run(dialect, func(t *testing.T) {
			env := servertest.New(t, dialect, servertest.Options{})
			if status, body := get(t, env.URL+"/healthz"); status != http.StatusOK || body != "ok\n" {
				t.Fatalf("/healthz: %d %q", status, body)
			}
			if status, body := get(t, env.URL+"/readyz"); status != http.StatusOK || body != "ok\n" {
				t.Fatalf("/readyz: %d %q", status, body)
			}
			if err := env.DB.Close(); err != nil {
				t.Fatal(err)
			}
			if status, body := get(t, env.URL+"/readyz"); status != http.StatusServiceUnavailable || body != "database\n" {
				t.Fatalf("/readyz with the database closed: %d %q", status, body)
			}
			if status, body := get(t, env.URL+"/healthz"); status != http.StatusOK || body != "ok\n" {
				t.Fatalf("/healthz with the database closed: %d %q", status, body)
			}
			fams := scrape(t, env.URL)
			if fams["go_goroutines"] == nil || fams["campaign_privacy_soap_calls_in_flight"] == nil {
				t.Fatal("/metrics lost what does not need the database")
			}
			if fams["campaign_privacy_requests"] != nil {
				t.Fatal("request counts served without a database")
			}
			if !strings.Contains(env.Logs.String(), "not ready") || !strings.Contains(env.Logs.String(), "reason=database") {
				t.Fatalf("the change of readiness is not logged:\n%s", env.Logs)
			}
		})
	}
}

// TestReadinessChecksInOrder: before Ready the answer is "starting"; then
// the first failing check names the reason, and a change is logged once.
func TestReadinessChecksInOrder(t *testing.T) {
	logs := &servertest.SyncBuffer{}
	h := metrics.NewHealth(slog.New(slog.NewTextHandler(logs, nil)))
	mux := http.NewServeMux()
	h.Register(mux)
	ask := func() (int, string) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := ask(); code != 503 || body != "starting\n" {
		t.Fatalf("before Ready: %d %q", code, body)
	}
	var migrated, keys error = errors.New("version 3, want 4"), nil
	h.Ready(
		metrics.Check{Reason: "database", Probe: func(context.Context) error { return nil }},
		metrics.Check{Reason: "migrations", Probe: func(context.Context) error { return migrated }},
		metrics.Check{Reason: "keys", Probe: func(context.Context) error { return keys }},
	)
	for range 3 {
		if code, body := ask(); code != 503 || body != "migrations\n" {
			t.Fatalf("migrations behind: %d %q", code, body)
		}
	}
	if n := strings.Count(logs.String(), "not ready"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs)
	}
	migrated, keys = nil, errors.New("gone")
	if code, body := ask(); code != 503 || body != "keys\n" {
		t.Fatalf("keys missing: %d %q", code, body)
	}
	keys = nil
	if code, body := ask(); code != 200 || body != "ok\n" {
		t.Fatalf("ready: %d %q", code, body)
	}
	if !strings.Contains(logs.String(), "ready again") {
		t.Fatalf("the return to ready is not logged:\n%s", logs)
	}
}

// TestNilMetricsRecordNothing: the services run without metrics (CLI
// commands); every recording method is a no-op on nil.
func TestNilMetricsRecordNothing(t *testing.T) {
	var m *metrics.Metrics
	m.Method("xtk:session#Logon").Done(metrics.OutcomeOK, "", time.Millisecond)
	m.CallStarted()
	m.CallEnded()
	m.LogonFailed(metrics.LogonLocked)
	m.LockedOut()
	m.WorkflowRun(privacy.Collect, time.Second, 1, 0, metrics.RunOK)
	m.ExportWritten(1, 10)
	m.RowsDeleted(1)
	m.Downloaded(10)
	m.WatchDB(nil)
	m.WatchRequests(nil)
	if m.Method("x") != nil {
		t.Fatal("a nil Metrics made collectors")
	}
}

// TestMetricsFormats: /metrics serves Prometheus' text format, or its
// protobuf format when asked, as Handler's comment says; a scraper that
// asks for OpenMetrics (Prometheus asks for it first) gets the text
// format, OpenMetrics not being enabled.
func TestMetricsFormats(t *testing.T) {
	env := servertest.New(t, "sqlite", servertest.Options{})
	for accept, want := range map[string]string{
		"": "text/plain",
		"application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited": "application/vnd.google.protobuf",
		"application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5":                  "text/plain",
	} {
		req, _ := http.NewRequest("GET", env.URL+"/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if ct := resp.Header.Get("Content-Type"); resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, want) {
			t.Errorf("Accept %q: %d %q, want %s", accept, resp.StatusCode, ct, want)
		}
	}
}
