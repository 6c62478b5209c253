package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how long work goes (demo-data, workflow run) on standard
// error: a bar with the count, the rate and the time left on a terminal
// (schollz/progressbar), else one line every few seconds, for a log.
type progress struct {
	mu          sync.Mutex
	bar         *progressbar.ProgressBar
	w           io.Writer
	what, unit  string
	total, done int64
	start, last time.Time
	every       time.Duration
	json        *slog.Logger // JSON lines instead of text (CP_LOG_FORMAT=json)
}

// progressEvery is how often a progress line is written when standard
// error is not a terminal.
const progressEvery = 5 * time.Second

// newProgress starts a progress of total units (total <= 0: unknown).
func (m *Main) newProgress(what, unit string, total int64) *progress {
	p := &progress{w: m.Stderr, what: what, unit: unit, total: total, start: time.Now(), every: m.ProgressEvery, json: m.progressLog}
	p.last = p.start
	if p.every == 0 {
		p.every = progressEvery
	}
	if f, ok := m.Stderr.(*os.File); ok && p.json == nil && term.IsTerminal(int(f.Fd())) {
		max := total
		if max <= 0 {
			max = -1 // a spinner with the count and the rate
		}
		p.bar = progressbar.NewOptions64(max,
			progressbar.OptionSetWriter(m.Stderr),
			progressbar.OptionSetDescription(what),
			progressbar.OptionSetItsString(unit),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionSetWidth(30),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(m.Stderr) }),
		)
	}
	return p
}

// Set records that done units are finished.
func (p *progress) Set(done int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done = done
	if p.bar != nil {
		_ = p.bar.Set64(done)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= p.every {
		p.last = now
		p.line(now)
	}
}

// Add records n more finished units.
func (p *progress) Add(n int64) {
	p.mu.Lock()
	done := p.done + n
	p.mu.Unlock()
	p.Set(done)
}

// Finish ends the bar, or writes the last line.
func (p *progress) Finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil {
		_ = p.bar.Finish()
		return
	}
	p.line(time.Now())
}

// line writes "what: done/total unit (pct), rate/s, about T left".
func (p *progress) line(now time.Time) {
	elapsed := now.Sub(p.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(p.done) / elapsed.Seconds()
	}
	if p.json != nil {
		p.json.Info("progress", "what", p.what, "done", p.done, "total", p.total, "unit", p.unit, "rate", int64(rate))
		return
	}
	if p.total <= 0 {
		fmt.Fprintf(p.w, "%s: %d %s, %.0f/s, %s\n", p.what, p.done, p.unit, rate, elapsed.Round(time.Second))
		return
	}
	left := "?"
	if rate > 0 {
		left = (time.Duration(float64(p.total-p.done)/rate) * time.Second).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "%s: %d/%d %s (%d%%), %.0f/s, about %s left\n", p.what, p.done, p.total, p.unit, p.done*100/p.total, rate, left)
}
