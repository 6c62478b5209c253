// Package app is the service's one wiring: it loads the schemas, opens and
// migrates the database, and builds the session and privacy services, the
// SOAP server and the web front on top of them. The command
// (cmd/campaign-privacy) and the tests (internal/servertest) both call
// Open, so the object graph is written once.
//
// app sits at the top of the layering, beside cmd: it may import every
// package of the service, and none of them may import it (internal/archtest).
// It reads no environment and no file of its own: settings arrive resolved
// in Config (cmd's settings table does the parsing, the defaults and the
// key files).
package app

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/internal/persist"
	"github.com/campaign-privacy/campaign-privacy/internal/querydef"
	"github.com/campaign-privacy/campaign-privacy/internal/store"
	"github.com/campaign-privacy/campaign-privacy/privacy"
	"github.com/campaign-privacy/campaign-privacy/schemas"
	"github.com/campaign-privacy/campaign-privacy/server"
	"github.com/campaign-privacy/campaign-privacy/session"
	"github.com/campaign-privacy/campaign-privacy/web"
)

// Config is everything Open needs, already parsed and validated.
type Config struct {
	// Store locates the database (CP_DATABASE_URL, CP_DATA_DIR).
	Store store.Config
	// DB, if set, is an open database used instead of opening Store (two
	// services on one database in tests). Close leaves it open.
	DB *store.DB
	// Schemas holds custom schema files (CP_SCHEMAS_DIR); nil: the
	// embedded schemas only.
	Schemas fs.FS
	// Logger and Now, if set, are given to every service whose own Config
	// leaves them empty.
	Logger *slog.Logger
	Now    func() time.Time
	// Failpoint, if set, is the fault tests' hook, given to the SOAP server
	// and the privacy service (CP_FAILPOINT).
	Failpoint func(name string) error
	// OnQuotaRefused, if set, is told each time a per-operator quota acts:
	// "sessions" (a Logon revoked the operator's oldest sessions) or
	// "requests" (a CreateRequestByName refused). Given to the session and
	// privacy services whose own Config leaves it empty: the hook a
	// campaign_privacy_quota_refusals_total{quota} counter hangs on.
	OnQuotaRefused func(quota string)

	Session session.Config
	Privacy privacy.Config
	Server  server.Config
	Web     web.Config

	// Metrics, if set, is given to every service whose own Config has
	// none, watches the database pool and the requests, and is served at
	// GET /metrics to MetricsZone: on Handler, or, with MetricsApart
	// (CP_METRICS_ADDR), only on MetricsHandler.
	Metrics      *metrics.Metrics
	MetricsZone  netzone.Zone
	MetricsApart bool
	// Ready are readiness checks run after the database and migrations
	// ones (cmd adds "keys").
	Ready []metrics.Check
}

// App is one wired service.
type App struct {
	DB       *store.DB
	Registry *schemas.Registry
	Sessions *session.Service
	Privacy  *privacy.Service
	Server   *server.Server
	Web      *web.Server
	// Metrics are Config.Metrics (nil without); Health serves /healthz and
	// /readyz on Handler and MetricsHandler.
	Metrics *metrics.Metrics
	Health  *metrics.Health
	// Migrated lists the migrations Open applied (empty: none pending).
	Migrated []int

	handler, metricsHandler http.Handler
	ownDB                   bool
}

// Open builds the service: the schemas (embedded and custom), the
// database (a schema newer than this binary is refused, pending migrations
// are applied, the data-model tables created), the session and privacy
// services (the namespaces seeded), the SOAP server and the web front.
func Open(ctx context.Context, cfg Config) (*App, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	registry, err := schemas.New(cfg.Schemas)
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	a := &App{Registry: registry, DB: cfg.DB}
	if a.DB == nil {
		sc := cfg.Store
		if sc.Logger == nil {
			sc.Logger = log
		}
		if sc.Now == nil {
			sc.Now = cfg.Now
		}
		if sc.Failpoint == nil {
			sc.Failpoint = cfg.Failpoint
		}
		if a.DB, err = store.Open(ctx, sc); err != nil {
			return nil, err
		}
		a.ownDB = true
	}
	if err := a.build(ctx, cfg, log); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *App) build(ctx context.Context, cfg Config, log *slog.Logger) error {
	db, registry := a.DB, a.Registry
	if err := db.CheckVersion(ctx); err != nil {
		return err
	}
	applied, err := db.Migrate(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	a.Migrated = applied
	if len(applied) > 0 {
		log.Info("database migrated", "dialect", db.Dialect(), "versions", fmt.Sprint(applied))
	}
	if err := db.CheckViews(ctx, registry); err != nil {
		return err
	}
	if err := db.SyncDataModel(ctx, registry); err != nil {
		return fmt.Errorf("create data-model tables: %w", err)
	}

	a.Metrics = cfg.Metrics
	scfg := cfg.Session
	fill(&scfg.Logger, &scfg.Now, log, cfg.Now)
	if scfg.OnQuotaRefused == nil {
		scfg.OnQuotaRefused = cfg.OnQuotaRefused
	}
	if scfg.Metrics == nil {
		scfg.Metrics = cfg.Metrics
	}
	if a.Sessions, err = session.New(db, scfg); err != nil {
		return err
	}

	pcfg := cfg.Privacy
	fill(&pcfg.Logger, &pcfg.Now, log, cfg.Now)
	if pcfg.Failpoint == nil {
		pcfg.Failpoint = cfg.Failpoint
	}
	if pcfg.OnQuotaRefused == nil {
		pcfg.OnQuotaRefused = cfg.OnQuotaRefused
	}
	if pcfg.Metrics == nil {
		pcfg.Metrics = cfg.Metrics
	}
	a.Privacy = privacy.New(db, registry, pcfg)
	if err := a.Privacy.CheckKeys(ctx, privacy.InstanceKey{Name: "session key (CP_SESSION_KEY, session.key)",
		Option: "CpSessionKeyFingerprint", Current: scfg.Key, Previous: scfg.PreviousKeys}); err != nil {
		return err
	}
	if err := a.Privacy.Setup(ctx); err != nil {
		return fmt.Errorf("set up namespaces: %w", err)
	}

	srv := cfg.Server
	fill(&srv.Logger, &srv.Now, log, cfg.Now)
	if srv.Failpoint == nil {
		srv.Failpoint = cfg.Failpoint
	}
	if srv.Ping == nil {
		srv.Ping = db.Ping
	}
	if srv.Metrics == nil {
		srv.Metrics = cfg.Metrics
	}
	if srv.DatabaseID == "" {
		if srv.DatabaseID, err = db.DatabaseID(ctx); err != nil {
			return fmt.Errorf("read the database id: %w", err)
		}
	}
	srv.Persist = persist.New(db, registry, cfg.Now)
	srv.Queries = &querydef.Service{DB: db, Registry: registry}
	a.Server = server.New(srv, registry, a.Sessions, a.Privacy)

	wcfg := cfg.Web
	fill(&wcfg.Logger, &wcfg.Now, log, cfg.Now)
	if wcfg.Metrics == nil {
		wcfg.Metrics = cfg.Metrics
	}
	if wcfg.Workflows == nil {
		priv := a.Privacy
		wcfg.Workflows = func(ctx context.Context) ([]privacy.Report, error) { return priv.RunTaken(ctx, "all") }
	}
	if wcfg.Revision == "" {
		wcfg.Revision = a.Server.CommitID()
	}
	a.Web = web.New(wcfg, a.Sessions, a.Privacy)

	// Observability: the pool and the requests are read at scrape time;
	// the service is ready once built, while the checks pass.
	cfg.Metrics.WatchDB(db.Pool())
	cfg.Metrics.WatchRequests(a.Privacy.RequestStats)
	a.Health = metrics.NewHealth(log)
	a.Health.Ready(append([]metrics.Check{
		{Reason: "database", Probe: db.Ping},
		{Reason: "migrations", Probe: db.CheckMigrated},
	}, cfg.Ready...)...)
	own := http.NewServeMux()
	a.Health.Register(own)

	mux := http.NewServeMux()
	a.Server.Register(mux)
	a.Web.Register(mux)
	a.Health.Register(mux)
	if cfg.Metrics != nil {
		h := cfg.Metrics.Handler(cfg.MetricsZone)
		own.Handle("GET /metrics", h)
		if !cfg.MetricsApart {
			mux.Handle("GET /metrics", h)
		}
	}
	a.handler, a.metricsHandler = mux, own
	return nil
}

// fill gives a service's config the shared logger and clock where it has
// none of its own.
func fill(logger **slog.Logger, now *func() time.Time, log *slog.Logger, clock func() time.Time) {
	if *logger == nil {
		*logger = log
	}
	if *now == nil && clock != nil {
		*now = clock
	}
}

// Handler serves the SOAP router and the web pages (the console, the
// download) on one mux.
func (a *App) Handler() http.Handler { return a.handler }

// MetricsHandler serves /metrics (with Config.Metrics) and /healthz,
// /readyz alone: the listener of CP_METRICS_ADDR.
func (a *App) MetricsHandler() http.Handler { return a.metricsHandler }

// Close closes the database, unless Config.DB lent it.
func (a *App) Close() error {
	if a == nil || !a.ownDB || a.DB == nil {
		return nil
	}
	err := a.DB.Close()
	a.DB = nil
	return err
}
