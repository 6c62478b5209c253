package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/app"
	"github.com/campaign-privacy/campaign-privacy/internal/metrics"
	"github.com/campaign-privacy/campaign-privacy/internal/netzone"
	"github.com/campaign-privacy/campaign-privacy/session"
)

func (m *Main) serve(ctx context.Context, args []string) (err error) {
	_, s, err := m.parse("serve", args, nil)
	if err != nil {
		return err
	}
	log := m.logger(s)
	started := false
	defer func() {
		// SIGTERM while starting (a rolling deploy stopping a pod not
		// ready yet): a stop, as after the start, not a failure. After
		// the start, the server's own shutdown says how it went.
		if err != nil && ctx.Err() != nil && !started {
			log.Info("shutting down: stopped while starting")
			err = nil
		}
	}()
	m.tuneGC()
	// Listen first: a port in use stops the start before the database is
	// migrated or a workflow scheduled.
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("CP_ADDR %s: %w", s.addr, err)
	}
	defer ln.Close()
	var metricsLn net.Listener
	if s.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", s.metricsAddr); err != nil {
			return fmt.Errorf("CP_METRICS_ADDR %s: %w", s.metricsAddr, err)
		}
		defer metricsLn.Close()
	}
	b := readBuildInfo()
	met := metrics.New(metrics.Options{Logger: log,
		Build: metrics.Build{Version: b.Version, Revision: b.Revision, GoVersion: b.GoVersion, Dirty: b.Dirty}})
	// BearerTokenLogon's key set: only serve reads it (the other commands
	// serve no logon, and must work while the identity provider is
	// down); its refresh lives as long as ctx.
	var ims *session.IMS
	if s.imsJWKS != "" {
		if ims, err = session.NewIMS(ctx, session.IMSConfig{JWKS: s.imsJWKS, Issuer: s.imsIssuer, Audience: s.imsAudience,
			Algorithms: s.imsAlgorithms, OperatorClaim: s.imsOperatorClaim, Logger: log}); err != nil {
			return err
		}
	}
	a, err := m.open(ctx, s, log, func(c *app.Config) {
		c.Session.IMS = ims
		c.Metrics, c.MetricsApart = met, metricsLn != nil
		c.MetricsZone = netzone.Zone{Allowed: s.metricsSubnets, Trusted: s.trustedProxies}
		c.Ready = []metrics.Check{{Reason: "keys", Probe: s.keyFilesReadable()}}
	})
	if err != nil {
		return err
	}
	defer a.Close()
	if metricsLn != nil {
		serveMetrics(ctx, metricsLn, a.MetricsHandler(), log)
		log.Info("metrics listening", "addr", metricsLn.Addr().String())
	}
	created, generated, err := a.Sessions.EnsureAdmin(ctx, s.adminPassword)
	if err != nil {
		return fmt.Errorf("create the admin operator: %w", err)
	}
	if created && generated != "" {
		fmt.Fprintf(m.Stdout, "\nCreated operator 'admin' with the generated password:\n\n    %s\n\nIt is shown only this once. Set CP_ADMIN_PASSWORD to choose it yourself.\n\n", generated)
	} else if created {
		log.Info("created operator admin with the password from CP_ADMIN_PASSWORD")
	}
	go purgeSessions(ctx, a.Sessions, log)
	// A scheduled run stops at ctx's end, and so does a run started over
	// SOAP: a delete run ends its batch, starts no residue purge and
	// releases its deleted requests for the next run. Serve waits for
	// them, within the shutdown's budget.
	var stopAt atomic.Int64
	context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })
	workflows := make(chan struct{})
	go func() {
		defer close(workflows)
		a.Privacy.RunSchedule(ctx, s.workflowSchedule, a.DB.Exclusive)
	}()
	defer func() {
		if ctx.Err() == nil {
			return // Serve failed: the process ends
		}
		// AfterFunc's func runs in a goroutine of its own: it may not have
		// noted the stop yet (a zero time, already past the budget).
		stop := time.Unix(0, stopAt.Load())
		if stopAt.Load() == 0 {
			stop = time.Now()
		}
		budget, cancel := context.WithDeadline(context.Background(), stop.Add(shutdownBudget))
		defer cancel()
		ended := a.Privacy.StopWorkflows(budget)
		select {
		case <-workflows:
		case <-budget.Done():
			ended = false
		}
		if !ended {
			log.Warn("a workflow run did not stop within the shutdown's budget: its requests wait for their lease")
		}
	}()
	log.Info("workflows scheduled", "schedule", s.workflowSchedule.String())
	zone := m.zone(s)
	if len(zone.Allowed) == 0 {
		log.Warn("CP_ALLOWED_SUBNETS is empty: the download and the console deny everyone")
	}
	for _, p := range zone.Allowed {
		if p.Bits() == 0 {
			log.Warn("CP_ALLOWED_SUBNETS allows every address", "prefix", p.String())
		}
	}
	// One shutdown line when the signal comes, before the calls in flight
	// are waited for; logged before serve returns even when Serve ends at
	// once (both channels ready: select may take either).
	stopped, logged := make(chan struct{}), make(chan struct{})
	defer func() { close(stopped); <-logged }()
	go func() {
		defer close(logged)
		select {
		case <-ctx.Done():
		case <-stopped:
			if ctx.Err() == nil {
				return
			}
		}
		log.Info("shutting down: finishing the calls in flight and the workflow run, if any (at most 30 s)")
	}()
	started = true
	return a.Server.Serve(ctx, ln, a.Handler(), func(addr string) {
		log.Info("campaign-privacy listening", "addr", addr, "dialect", a.DB.Dialect(), "version", version)
		if len(s.soapAllowedSubnets) == 0 && !loopbackOnly(addr) {
			log.Warn("the SOAP API is open to every address that reaches this listener (CP_SOAP_ALLOWED_SUBNETS is empty, as in ACC): "+
				"a caller with an operator's password can read personal data from anywhere; set CP_SOAP_ALLOWED_SUBNETS to the clients' networks", "addr", addr)
		}
		if m.Ready != nil {
			m.Ready(addr)
		}
	})
}

// shutdownBudget is how long a shutdown may take, from the signal (the
// server's own shutdown of the calls in flight is bounded alike).
const shutdownBudget = 30 * time.Second

// loopbackOnly reports whether a listen address accepts only this
// machine's own connections (127.0.0.0/8, ::1, localhost).
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// zone is the console's and the download's security zone: who may open
// them (CP_ALLOWED_SUBNETS; an empty list denies everyone) and which
// proxies are believed.
func (m *Main) zone(s *settings) netzone.Zone {
	return netzone.Zone{Allowed: s.allowedSubnets, Trusted: s.trustedProxies}
}

// purgeSessions deletes long-expired session rows every hour until ctx ends.
func purgeSessions(ctx context.Context, sessions *session.Service, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := sessions.PurgeExpired(ctx); err != nil && ctx.Err() == nil {
			log.Warn("purging expired sessions failed", "err", err)
		} else if n > 0 {
			log.Info("purged expired sessions", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// failpoint returns the fault-test hook named by CP_FAILPOINT: at that
// step ("delete-after-batch", "collect-after-export") the process kills
// itself with SIGKILL, as kill -9 would (with "<step>:after=N", only at
// its N+1th time: "create-batch-before-commit:after=50"), or with
// "<step>:sleep=2s" pauses there, the first time; a step may hold colons
// itself ("soap:nms:privacyRequest#CreateRequestByName:sleep=5s"). Unset
// in production.
func (m *Main) failpoint() func(string) error {
	want := m.Getenv("CP_FAILPOINT")
	if want == "" {
		return nil
	}
	point, action := want, ""
	if i := strings.LastIndex(want, ":"); i >= 0 && (strings.HasPrefix(want[i+1:], "after=") || strings.HasPrefix(want[i+1:], "sleep=")) {
		point, action = want[:i], want[i+1:]
	}
	pause, _ := time.ParseDuration(strings.TrimPrefix(action, "sleep="))
	after, _ := strconv.ParseInt(strings.TrimPrefix(action, "after="), 10, 64)
	var once sync.Once
	var hits atomic.Int64
	return func(name string) error {
		if name != point || hits.Add(1) <= after {
			return nil
		}
		if pause > 0 {
			once.Do(func() { time.Sleep(pause) }) // a fault test restarts the database meanwhile
			return nil
		}
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// tuneGC sets the garbage collector for a service whose live heap is small
// (tens of MiB) but which allocates for every call: collecting at 5× the
// live heap instead of 2× cuts the collector's CPU per SOAP call by about a
// quarter (bench/README.md), and a soft limit of 200 MiB makes it collect
// sooner when the heap swells, so that a logon storm peaks under the
// security bar's 256 MiB. Logons reuse their argon2id memory (19 MiB a
// hash, kept a second after each, internal/argon2): before, under this limit, the runtime
// returned each hash's pages to the system and faulted them in again for
// the next (about 0.85× the bare argon2id server at 10–32 connections).
// GOGC and GOMEMLIMIT, when set, win.
func (m *Main) tuneGC() {
	if m.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if m.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(200 << 20)
	}
}
