package app

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
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
	facts := &storeFacts{st: r.st, km: r.km, ctx: ctx, users: map[string]string{}}
	if err := facts.prefetch(batch); err != nil {
		return 0, 0, err
	}
	eng := alerts.New(r.rules, facts)
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
	// hashes are the token hashes prefetch read for a batch, by
	// hashKey; a key present (even with no hashes) is answered from it.
	hashes map[string][]int64
}

// tokenHasher is the store's optional bulk read of token hashes
// (sqlstore.DB.TokenHashes).
type tokenHasher interface {
	TokenHashes(ctx context.Context, tenant, typ string, p int32, ids []string) (map[string][]int64, error)
	PrefixExact(ctx context.Context, tenant, typ string, p int32, t, fpLen int, ids []string) (map[string][]int64, error)
}

// familyPart is the part number of a name's family in search_prefix.
const familyPart = 1

// The token parameters the rules' facts are made of.
var (
	pidSecurity = search.PID("Patient", "_security")
	// Family names are part 1 of the name rows in search_prefix.
	pidFamily       = search.PID("Patient", "name")
	pidPractFamily  = search.PID("Practitioner", "name")
	errNoPrefetched = errors.New("not prefetched")
)

func hashKey(p int32, tenant, id string) string {
	return fmt.Sprint(p) + "\x1f" + tenant + "\x1f" + id
}

// prefetch reads, in a few statements for the whole batch, the security
// labels and exact family names (keyed hashes) of every Patient the
// batch's records name and the family names of the Practitioners their
// users are, so that the rules' questions are answered from memory: one
// question per patient would cost a statement each, and the rules could
// not keep up with the ledger (BenchmarkAlertRunner).
func (f *storeFacts) prefetch(batch []*audit.Record) error {
	th, ok := f.st.(tokenHasher)
	if !ok {
		return nil
	}
	f.hashes = map[string][]int64{}
	type ids struct {
		list []string
		seen map[string]bool
	}
	add := func(m map[string]*ids, tenant, id string) {
		s := m[tenant]
		if s == nil {
			s = &ids{seen: map[string]bool{}}
			m[tenant] = s
		}
		if !s.seen[id] {
			s.seen[id] = true
			s.list = append(s.list, id)
		}
	}
	patients, practs := map[string]*ids{}, map[string]*ids{}
	for _, r := range batch {
		if r.Actor == "" || r.Outcome != audit.OutcomeSuccess {
			continue
		}
		named := false
		for _, e := range r.Entities {
			if rest, ok := strings.CutPrefix(e, "Patient/"); ok {
				if id, _, _ := strings.Cut(rest, "/"); id != "" {
					add(patients, r.Tenant, id)
					named = true
				}
			}
		}
		if !named {
			continue
		}
		pr, err := f.practitioner(r.Tenant, r.Actor)
		if err != nil {
			return err
		}
		if pr != "" {
			add(practs, r.Tenant, pr)
		}
	}
	read := func(m map[string]*ids, typ string, p int32) error {
		for tenant, s := range m {
			var got map[string][]int64
			var err error
			if p == pidSecurity {
				got, err = th.TokenHashes(f.ctx, tenant, typ, p, s.list)
			} else {
				got, err = th.PrefixExact(f.ctx, tenant, typ, p, familyPart, search.ExactFPLen, s.list)
			}
			if err != nil {
				return fmt.Errorf("alerts: facts of a batch: %w", err)
			}
			for _, id := range s.list {
				f.hashes[hashKey(p, tenant, id)] = append([]int64{}, got[id]...)
			}
		}
		return nil
	}
	if err := read(patients, "Patient", pidSecurity); err != nil {
		return err
	}
	if err := read(patients, "Patient", pidFamily); err != nil {
		return err
	}
	return read(practs, "Practitioner", pidPractFamily)
}

// prefetched returns the hashes prefetch read for (p, tenant, id).
func (f *storeFacts) prefetched(p int32, tenant, id string) ([]int64, error) {
	if h, ok := f.hashes[hashKey(p, tenant, id)]; ok {
		return h, nil
	}
	return nil, errNoPrefetched
}

// practitioner returns the Practitioner id user actor of tenant is
// linked to ("" none), remembered for the Step.
func (f *storeFacts) practitioner(tenant, actor string) (string, error) {
	pr, ok := f.users[actor]
	if !ok {
		u, err := f.st.UserByID(f.ctx, actor)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return "", err
		case u.Tenant == tenant:
			pr = u.Practitioner
		}
		f.users[actor] = pr
	}
	return pr, nil
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
	if hs, err := f.prefetched(pidSecurity, tenant, patient); err == nil {
		yes := false
		for _, l := range labels {
			yes = yes || slices.Contains(hs, search.TokenHash(keyer, l))
		}
		f.remember(k, yes)
		return yes, nil
	}
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
	pr, err := f.practitioner(tenant, actor)
	if err != nil || pr == "" {
		return false, err
	}
	k := "s\x1f" + tenant + "\x1f" + pr + "\x1f" + patient
	if v, ok := f.memo[k]; ok {
		return v, nil
	}
	ph, err1 := f.prefetched(pidFamily, tenant, patient)
	qh, err2 := f.prefetched(pidPractFamily, tenant, pr)
	if err1 == nil && err2 == nil {
		yes := slices.ContainsFunc(ph, func(h int64) bool { return slices.Contains(qh, h) })
		f.remember(k, yes)
		return yes, nil
	}
	// Family names are the family part (1) of the name rows in
	// search_prefix: equal values have equal short rows' anchor hash and
	// exact bytes.
	q := store.SearchQuery{Tenant: tenant, Types: []string{"Patient"}, Where: []string{
		"r.id = ?",
		"r.rid IN (SELECT x.rid FROM search_prefix x WHERE x.p = " + search.PIDSQL(pidFamily) +
			" AND x.t = " + strconv.Itoa(familyPart) + " AND EXISTS (SELECT 1 FROM search_prefix y JOIN resources q ON q.rid = y.rid WHERE y.p = " +
			search.PIDSQL(pidPractFamily) + " AND y.t = " + strconv.Itoa(familyPart) + " AND y.h = x.h AND " + search.ShortRowExact("y") + " = " + search.ShortRowExact("x") +
			" AND q.tenant = ? AND q.type = 'Practitioner' AND q.id = ? AND q.deleted = 0))",
	}, Args: []any{patient, tenant, pr}}
	return f.exists(k, q)
}

func (f *storeFacts) exists(k string, q store.SearchQuery) (bool, error) {
	got, err := f.st.Exists(f.ctx, []store.SearchQuery{q})
	if err != nil {
		return false, err
	}
	f.remember(k, got[0])
	return got[0], nil
}

func (f *storeFacts) remember(k string, v bool) {
	if f.memo == nil {
		f.memo = map[string]bool{}
	}
	f.memo[k] = v
}
