package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/campaign-privacy/campaign-privacy/internal/demodata"
)

func (m *Main) demoData(ctx context.Context, args []string) error {
	var (
		recipients int
		seed       uint64
	)
	_, s, err := m.parse("demo-data", args, func(fs *flag.FlagSet) {
		fs.IntVar(&recipients, "recipients", 1000, "number of recipients to add")
		fs.Uint64Var(&seed, "seed", 1, "random seed: the same seed adds the same recipients")
	})
	if err != nil {
		return err
	}
	if recipients < 1 || recipients > 50_000_000 {
		return errors.New("--recipients must be between 1 and 50000000")
	}
	a, err := m.open(ctx, s, m.logger(s))
	if err != nil {
		return err
	}
	defer a.Close()
	start := time.Now()
	g := &demodata.Generator{DB: a.DB, Registry: a.Registry, Seed: seed}
	p := m.newProgress("demo-data", "recipients", int64(recipients))
	first, last, err := g.Generate(ctx, recipients, func(done int) { p.Set(int64(done)) })
	p.Finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "added recipients %s to %s in %s\n", demodata.Email(first), demodata.Email(last), time.Since(start).Round(time.Millisecond))
	return nil
}
