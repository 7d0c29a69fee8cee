package app

import (
	"context"
	"errors"
	"iter"
	"net/url"
	"slices"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// This file is what the one-shot commands of cmd/ward need from the
// system, so that the commands reach it through app only.

// LedgerRecord is one record of the audit ledger, as reports list it.
type LedgerRecord = audit.Record

// IsGovernanceAction reports whether a ledger action is a change of what
// governs access to patient data (consents, care teams, ...).
func IsGovernanceAction(action string) bool {
	return slices.Contains(records.GovernanceActions, action)
}

// Ledger reads the audit ledger of an existing database.
type Ledger struct{ st store.Store }

// OpenLedger opens the existing database of cfg for reading its ledger.
func OpenLedger(ctx context.Context, cfg config.Config) (*Ledger, error) {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &Ledger{st: st}, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.st.Close() }

// Tenant yields the ledger records of tenant at or after since, oldest
// first; a failure to read is yielded as the last error.
func (l *Ledger) Tenant(ctx context.Context, tenant string, since time.Time) iter.Seq2[*LedgerRecord, error] {
	return func(yield func(*LedgerRecord, error) bool) {
		stop := errors.New("stopped")
		err := l.st.AuditScan(ctx, 0, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
			for r, err := range recs {
				if err != nil {
					return err
				}
				if r.Tenant != tenant || r.Time.Before(since) {
					continue
				}
				if !yield(r, nil) {
					return stop
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, stop) {
			yield(nil, err)
		}
	}
}

// ParseSearch parses a search as the server would for a command (strict,
// 20 a page).
func ParseSearch(typ string, vals url.Values) (*query.Query, error) {
	return query.Parse(typ, vals, query.Options{Strict: true, DefaultCount: 20})
}

// Explain returns the database's plan for q in tenant; generic asks
// PostgreSQL for the generic plan.
func (a *App) Explain(ctx context.Context, tenant string, q *query.Query, generic bool) ([]string, error) {
	return a.Records.Explain(ctx, tenant, q, store.ExplainOptions{Generic: generic})
}

// IndexTable is the size of one search index table (see IndexSize).
type IndexTable = store.TableSize

// ErrCannotMeasure: the store cannot measure its index.
var ErrCannotMeasure = errors.New("this store cannot measure its index")

// IndexSize returns the index tables' sizes for typ and the number of
// current resources of typ.
func (a *App) IndexSize(ctx context.Context, typ string) ([]IndexTable, int64, error) {
	sz, ok := a.Store.(store.Sizer)
	if !ok {
		return nil, 0, ErrCannotMeasure
	}
	return sz.IndexSize(ctx, typ)
}

// GenerateKEKFile writes a new random key-encryption key to a new file at
// path, mode 0600 (seal.GenerateKEKFile).
func GenerateKEKFile(path string) error {
	_, err := seal.GenerateKEKFile(path)
	return err
}

// FirstIssue returns the location and text of the first issue of a
// validation error, and false for any other error.
func FirstIssue(err error) (expression, diagnostics string, ok bool) {
	var pe *problem.Error
	if !errors.As(err, &pe) || len(pe.Issues) == 0 {
		return "", "", false
	}
	return pe.Issues[0].Expression, pe.Issues[0].Diagnostics, true
}
