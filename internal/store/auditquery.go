package store

import (
	"context"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// AuditQuery selects ledger records for the AuditEvent view and the
// accounting of disclosures, newest first. Every set field narrows the
// result; zero fields do not.
type AuditQuery struct {
	Tenant string
	// Patient selects records whose Patients name this id, through the
	// (tenant, patient, time) index.
	Patient string
	Actor   string
	// Entity selects records naming this reference ("Type/id"), in any
	// version.
	Entity string
	// Actions selects records with any of these actions.
	Actions []string
	Outcome *audit.Outcome
	// Since and Until bound the record time: Since <= Time < Until.
	Since, Until time.Time
	// After continues a page: records strictly older than this cursor.
	After *AuditCursor
	// Limit bounds the page (DefaultAuditLimit when zero).
	Limit int
}

// AuditCursor is a position in the newest-first order: time, then seq.
type AuditCursor struct {
	Time time.Time
	Seq  int64
}

// DefaultAuditLimit is the page size of an AuditQuery without one.
const DefaultAuditLimit = 100

// LedgerSearch finds ledger records by patient, actor, entity and time.
type LedgerSearch interface {
	// AuditSearch returns the records q selects, newest first, with their
	// Patients.
	AuditSearch(ctx context.Context, q AuditQuery) ([]*audit.Record, error)
	// AuditRecord returns the record seq of tenant with its Patients, or
	// an error matching ErrNotFound.
	AuditRecord(ctx context.Context, tenant string, seq int64) (*audit.Record, error)
}
