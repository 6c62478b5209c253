package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Check is one condition of readiness. Reason is the one word /readyz
// answers when Probe fails ("database", "migrations", "keys").
type Check struct {
	Reason string
	Probe  func(context.Context) error
}

// Health serves GET /healthz (the process is up and serving HTTP: always
// 200 "ok") and GET /readyz (200 "ok" when every check passes, else 503
// with the first failing check's reason). Until Ready is called, /readyz
// answers 503 "starting": the listener may be up before the database is
// migrated and the keys are loaded.
//
// Neither carries anything but that one word, so both are open to every
// address (load balancers and orchestrators probe from anywhere). Being
// open, /readyz runs its checks one at a time: probes that come while a
// run of the checks is under way share its answer, so a flood of them
// holds one database connection at most, not the pool the SOAP calls
// wait for.
type Health struct {
	checks  atomic.Pointer[[]Check]
	last    atomic.Pointer[string] // the last answer, to log changes only
	running singleflight.Group     // the run of the checks under way
	timeout time.Duration
	log     *slog.Logger
}

// NewHealth returns a Health that is not ready yet. A change of readiness
// is logged once (a probe every few seconds must not flood the log).
func NewHealth(log *slog.Logger) *Health {
	if log == nil {
		log = slog.Default()
	}
	return &Health{timeout: 3 * time.Second, log: log}
}

// Ready declares start-up done: from now on /readyz runs checks, in order.
func (h *Health) Ready(checks ...Check) { h.checks.Store(&checks) }

// Register mounts /healthz and /readyz on mux.
func (h *Health) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", h.handleHealthz)
	mux.HandleFunc("GET /readyz", h.handleReadyz)
}

func (h *Health) handleHealthz(w http.ResponseWriter, r *http.Request) {
	word(w, http.StatusOK, "ok")
}

func (h *Health) handleReadyz(w http.ResponseWriter, r *http.Request) {
	reason := h.Check(r.Context())
	if reason != "" {
		word(w, http.StatusServiceUnavailable, reason)
		return
	}
	word(w, http.StatusOK, "ok")
}

// Check runs the checks and returns the reason of the first that fails,
// "starting" before Ready, or "" when the service is ready. A call made
// while a run of the checks is under way waits for that run's answer.
//
// The checks run on a context of their own, bounded by the timeout: a
// prober that hangs up (net/http then cancels its request's context) must
// not fail the database's ping, or anyone could write not-ready/ready
// pairs into the log at will. A caller that leaves gets the last answer,
// which nobody reads.
func (h *Health) Check(ctx context.Context) string {
	if h.checks.Load() == nil {
		return "starting"
	}
	run := h.running.DoChan("readyz", func() (any, error) {
		return h.run(context.WithoutCancel(ctx)), nil
	})
	select {
	case res := <-run:
		return res.Val.(string)
	case <-ctx.Done():
		if last := h.last.Load(); last != nil {
			return *last
		}
		return "starting"
	}
}

// run runs the checks in order and logs a change of readiness.
func (h *Health) run(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	reason := ""
	var cause error
	for _, c := range *h.checks.Load() {
		if cause = probe(ctx, c); cause != nil {
			reason = c.Reason
			break
		}
	}
	if prev := h.last.Swap(&reason); prev == nil || *prev != reason {
		if reason != "" {
			h.log.Warn("not ready", "reason", reason, "err", cause)
		} else if prev != nil {
			h.log.Info("ready again")
		}
	}
	return reason
}

// probe runs one check; a panic is its failure. The checks run on
// singleflight's goroutine, where a panic is raised again out of reach of
// net/http's recovery: one probe would end the process.
func probe(ctx context.Context, c Check) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the check panicked: %v", p)
		}
	}()
	return c.Probe(ctx)
}

func word(w http.ResponseWriter, status int, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
