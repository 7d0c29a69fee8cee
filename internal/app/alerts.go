package app

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"time"

	"github.com/wardhealth/ward/internal/alerts"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/keys"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// This file wires the alert engine (internal/alerts) to the ledger: the
// facts it needs from the search index, its cursor and state in the
// store, and the loop `ward serve` runs.

// AlertCursor is the ledger cursor name of the alert engine.
const AlertCursor = "alerts"

// LoadAlertRules reads the rules of cfg (WARD_ALERT_RULES) or the shipped
// defaults.
func LoadAlertRules(cfg config.Config) (*alerts.Config, error) {
	if cfg.Ledger.AlertRules == "" {
		return alerts.Default(), nil
	}
	b, err := os.ReadFile(cfg.Ledger.AlertRules)
	if err != nil {
		return nil, fmt.Errorf("WARD_ALERT_RULES: %w", err)
	}
	c, err := alerts.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("WARD_ALERT_RULES: %w", err)
	}
	return c, nil
}

// AlertRunner evaluates the alert rules over the ledger records written
// since its cursor and commits the alerts, the new cursor and the rules'
// state in one transaction through the audit recorder.
type AlertRunner struct {
	st    store.Store
	km    *keys.Manager
	rules *alerts.Config
	// Batch is the most records one Step reads (5000 when zero).
	Batch int
}

// NewAlertRunner returns the runner of rules over a's ledger.
func (a *App) NewAlertRunner(rules *alerts.Config) *AlertRunner {
	return &AlertRunner{st: a.Store, km: a.Keys, rules: rules}
}

// Step evaluates one batch of new records and returns how many records it
// read and how many alerts it recorded. After an error nothing of the
// batch is kept: the next Step starts from the same cursor.
func (r *AlertRunner) Step(ctx context.Context) (read, raised int, err error) {
	seq, state, err := r.st.Cursor(ctx, AlertCursor)
	if err != nil {
		return 0, 0, err
	}
	s, err := alerts.LoadState(state)
	if err != nil {
		return 0, 0, err
	}
	batch, err := readAfter(ctx, r.st, seq, r.batch())
	if err != nil || len(batch) == 0 {
		return 0, 0, err
	}
	eng := alerts.New(r.rules, &storeFacts{st: r.st, km: r.km, ctx: ctx, users: map[string]string{}})
	var out []*audit.Record
	for _, rec := range batch {
		if err := eng.Process(s, rec, func(a alerts.Alert) { out = append(out, a.Record()) }); err != nil {
			return 0, 0, err
		}
	}
	b, err := s.Marshal()
	if err != nil {
		return 0, 0, err
	}
	cur := store.SaveCursor{Name: AlertCursor, Seq: batch[len(batch)-1].Seq, State: b}
	if err := store.NewRecorder(r.st).Commit(ctx, &store.Unit{Parts: []store.Part{cur}}, out...); err != nil {
		return 0, 0, fmt.Errorf("alerts: commit: %w", err)
	}
	return len(batch), len(out), nil
}

func (r *AlertRunner) batch() int {
	if r.Batch > 0 {
		return r.Batch
	}
	return 5000
}

// Run steps until ctx ends: batch after batch while records wait, then
// every interval; failures are logged and retried.
func (r *AlertRunner) Run(ctx context.Context, every time.Duration, log *slog.Logger) {
	for {
		n, raised, err := r.Step(ctx)
		if err != nil && ctx.Err() == nil {
			log.Warn("alert rules failed; retrying", "err", err)
		}
		if raised > 0 {
			log.Info("alerts raised", "count", raised)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
	}
}

var errBatchFull = errors.New("batch full")

// readAfter reads at most n ledger records after seq and closes the scan
// before they are processed (the facts queries need read connections).
func readAfter(ctx context.Context, l store.Ledger, seq int64, n int) ([]*audit.Record, error) {
	var out []*audit.Record
	err := l.AuditScan(ctx, seq, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for rec, err := range recs {
			if err != nil {
				return err
			}
			out = append(out, rec)
			if len(out) == n {
				return errBatchFull
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errBatchFull) {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	return out, nil
}

// storeFacts answers the rules' questions from the search index, by keyed
// hashes only: a security label is a token row of Patient _security, a
// family name the exact bytes of a name row of search_prefix. Answers are remembered for one Step.
type storeFacts struct {
	st    store.Store
	km    *keys.Manager
	ctx   context.Context
	users map[string]string // user id -> Practitioner id
	memo  map[string]bool
}

var _ alerts.Facts = (*storeFacts)(nil)

// Flagged implements alerts.Facts.
func (f *storeFacts) Flagged(tenant, patient string, labels []string) (bool, error) {
	k := "f\x1f" + tenant + "\x1f" + patient
	if v, ok := f.memo[k]; ok {
		return v, nil
	}
	b, err := f.km.Blinder(f.ctx, tenant)
	if err != nil {
		return false, err
	}
	keyer := search.BlindKeyer{B: b}
	args := []any{patient}
	for _, l := range labels {
		args = append(args, search.TokenHash(keyer, l))
	}
	q := store.SearchQuery{Tenant: tenant, Types: []string{"Patient"}, Where: []string{
		"r.id = ?",
		"r.rid IN (SELECT x.rid FROM search_token x WHERE x.p = " + search.PIDSQL(search.PID("Patient", "_security")) + " AND x.h IN (" + search.Marks(len(labels)) + "))",
	}, Args: args}
	return f.exists(k, q)
}

// SameFamily implements alerts.Facts: a user linked to a Practitioner
// shares a family name with the Patient when an exact family-name row of
// the one has the keyed hash of an exact family-name row of the other.
// Both rows are the search index's (the same tenant key, kind "exact"),
// so no name is ever read in clear. A user with no Practitioner has no
// family name in Ward and never matches.
func (f *storeFacts) SameFamily(tenant, actor, patient string) (bool, error) {
	pr, ok := f.users[actor]
	if !ok {
		u, err := f.st.UserByID(f.ctx, actor)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return false, err
		case u.Tenant == tenant:
			pr = u.Practitioner
		}
		f.users[actor] = pr
	}
	if pr == "" {
		return false, nil
	}
	k := "s\x1f" + tenant + "\x1f" + pr + "\x1f" + patient
	if v, ok := f.memo[k]; ok {
		return v, nil
	}
	// Family names are the family part (1) of the name rows in
	// search_prefix: equal values have equal short rows' anchor hash and
	// exact bytes.
	q := store.SearchQuery{Tenant: tenant, Types: []string{"Patient"}, Where: []string{
		"r.id = ?",
		"r.rid IN (SELECT x.rid FROM search_prefix x WHERE x.p = " + search.PIDSQL(search.PID("Patient", "name")) +
			" AND x.t = 1 AND EXISTS (SELECT 1 FROM search_prefix y JOIN resources q ON q.rid = y.rid WHERE y.p = " +
			search.PIDSQL(search.PID("Practitioner", "name")) + " AND y.t = 1 AND y.h = x.h AND " + search.ShortRowExact("y") + " = " + search.ShortRowExact("x") +
			" AND q.tenant = ? AND q.type = 'Practitioner' AND q.id = ? AND q.deleted = 0))",
	}, Args: []any{patient, tenant, pr}}
	return f.exists(k, q)
}

func (f *storeFacts) exists(k string, q store.SearchQuery) (bool, error) {
	got, err := f.st.Exists(f.ctx, []store.SearchQuery{q})
	if err != nil {
		return false, err
	}
	if f.memo == nil {
		f.memo = map[string]bool{}
	}
	f.memo[k] = got[0]
	return got[0], nil
}
