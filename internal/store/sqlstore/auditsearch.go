package sqlstore

// The ledger's patient index (audit_patients) and the searches over the
// ledger that the AuditEvent view and the accounting of disclosures run.

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/store"
)

// insertAuditPatient is one row of the patient index.
var insertAuditPatient = insertSpec{`INSERT INTO audit_patients (seq, patient, tenant, recorded_at) VALUES `, ``, 4}

// insertPatients writes the patient index rows of recs (already chained,
// so their Patients are sorted and unique) in the records' transaction.
func (db *DB) insertPatients(ctx context.Context, tx *sql.Tx, recs []*audit.Record) error {
	type row struct {
		r *audit.Record
		p string
	}
	var rows []row
	for _, r := range recs {
		for _, p := range r.Patients {
			rows = append(rows, row{r, p})
		}
	}
	if len(rows) == 0 {
		return nil
	}
	err := db.insertRows(ctx, tx, insertAuditPatient, len(rows), func(i int, a []any) []any {
		return append(a, rows[i].r.Seq, rows[i].p, rows[i].r.Tenant, rows[i].r.Time.UnixMicro())
	})
	if err != nil {
		return fmt.Errorf("append audit patient index: %w", err)
	}
	return nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

// fillPatients reads the patient lists of recs (ordered by seq or not).
func (db *DB) fillPatients(ctx context.Context, q querier, recs []*audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	bySeq := make(map[int64]*audit.Record, len(recs))
	args := make([]any, 0, len(recs))
	for _, r := range recs {
		bySeq[r.Seq] = r
		args = append(args, r.Seq)
	}
	rows, err := q.QueryContext(ctx, db.d.Placeholders(`SELECT seq, patient FROM audit_patients WHERE seq IN (`+
		strings.TrimSuffix(strings.Repeat("?, ", len(args)), ", ")+`) ORDER BY seq, patient`), args...)
	if err != nil {
		return fmt.Errorf("%w: read audit patient index: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var p string
		if err := rows.Scan(&seq, &p); err != nil {
			return fmt.Errorf("%w: read audit patient index: %v", store.ErrUnavailable, err)
		}
		if r := bySeq[seq]; r != nil {
			r.Patients = append(r.Patients, p)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%w: read audit patient index: %v", store.ErrUnavailable, err)
	}
	return nil
}

// auditSelect are the ledger columns scanAudit reads, on alias l.
const auditSelect = `l.seq, l.recorded_at, l.tenant, l.request_id, l.actor, l.role, l.action, l.resource_type, l.entities, l.outcome, l.detail, l.emergency, l.purpose, l.prev_hash, l.hash, l.address`

// patientsSelect is one more column after auditSelect: the record's
// patients, space-separated (a patient id is a FHIR id: no spaces), read
// in the same statement so that a search costs one round trip and its
// rows' index lookups happen while their record's page is at hand.
func (db *DB) patientsSelect() string {
	agg := `string_agg(pp.patient, ' ')`
	if db.d.Name == "sqlite" {
		agg = `group_concat(pp.patient, ' ')`
	}
	// The record's own copy (migration 00047); records older than it
	// read the index.
	return `, COALESCE(l.patients, (SELECT ` + agg + ` FROM audit_patients pp WHERE pp.seq = l.seq))`
}

// scanAudit reads the records of rows (columns as auditSelect, then
// patientsSelect when withPatients).
func scanAudit(rows *sql.Rows, withPatients ...bool) ([]*audit.Record, error) {
	out, _, err := scanAuditWith(rows, len(withPatients) > 0 && withPatients[0])
	return out, err
}

// scanAuditWith is scanAudit that also returns, when pats, each record's
// patients column as read (NULL: not known from the row).
func scanAuditWith(rows *sql.Rows, pats bool) ([]*audit.Record, []sql.NullString, error) {
	var out []*audit.Record
	var lists []sql.NullString
	for rows.Next() {
		r := &audit.Record{}
		var at int64
		var ents string
		var outcome, emergency int
		var prev, hash []byte
		var patients sql.NullString
		dest := []any{&r.Seq, &at, &r.Tenant, &r.RequestID, &r.Actor, &r.Role, &r.Action, &r.ResourceType, &ents, &outcome, &r.Detail, &emergency, &r.Purpose, &prev, &hash, &r.Address}
		if pats {
			dest = append(dest, &patients)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("%w: scan audit record: %v", store.ErrUnavailable, err)
		}
		lists = append(lists, patients)
		if patients.String != "" {
			// Sorted, as the chain holds them (audit.Record.Patients).
			r.Patients = strings.Fields(patients.String)
			slices.Sort(r.Patients)
		}
		r.Time = time.UnixMicro(at).UTC()
		r.Outcome = audit.Outcome(outcome)
		r.Emergency = emergency != 0
		copy(r.PrevHash[:], prev)
		copy(r.Hash[:], hash)
		var err error
		if r.Entities, err = decodeEntities(ents); err != nil {
			// A mangled entity list is tampering too: hand the record on
			// with a marker entity so that its hash cannot match.
			r.Entities = []string{"\x00undecodable:" + ents}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("%w: scan audit log: %v", store.ErrUnavailable, err)
	}
	return out, lists, nil
}

// likeEscape escapes s for a LIKE pattern with ESCAPE '\'.
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// AuditSearch returns the records q selects, newest first. A patient query
// walks the (tenant, patient, recorded_at, seq) index backwards from the
// page's cursor, joining each index row to its record by primary key and
// reading the record's patients from the index's primary key, all in one
// statement (both index reads are index-only once the table is vacuumed).
func (db *DB) AuditSearch(ctx context.Context, q store.AuditQuery) ([]*audit.Record, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultAuditLimit
	}
	var b strings.Builder
	var args []any
	t := "l" // the alias the time, seq and tenant conditions use
	b.WriteString(`SELECT ` + auditSelect + db.patientsSelect() + ` FROM `)
	if q.Patient != "" {
		t = "p"
		b.WriteString(`audit_patients p JOIN audit_log l ON l.seq = p.seq WHERE p.tenant = ? AND p.patient = ?`)
		args = append(args, q.Tenant, q.Patient)
	} else {
		b.WriteString(`audit_log l WHERE l.tenant = ?`)
		args = append(args, q.Tenant)
	}
	if q.Actor != "" {
		b.WriteString(` AND l.actor = ?`)
		args = append(args, q.Actor)
	}
	if len(q.Actions) > 0 {
		b.WriteString(` AND l.action IN (` + strings.TrimSuffix(strings.Repeat("?, ", len(q.Actions)), ", ") + `)`)
		for _, a := range q.Actions {
			args = append(args, a)
		}
	}
	if q.Outcome != nil {
		b.WriteString(` AND l.outcome = ?`)
		args = append(args, int(*q.Outcome))
	}
	if q.Entity != "" {
		e := likeEscape(q.Entity)
		b.WriteString(` AND (l.entities LIKE ? ESCAPE '\' OR l.entities LIKE ? ESCAPE '\')`)
		args = append(args, `%"`+e+`"%`, `%"`+e+`/%`)
	}
	if !q.Since.IsZero() {
		b.WriteString(` AND ` + t + `.recorded_at >= ?`)
		args = append(args, q.Since.UnixMicro())
	}
	if !q.Until.IsZero() {
		b.WriteString(` AND ` + t + `.recorded_at < ?`)
		args = append(args, q.Until.UnixMicro())
	}
	if c := q.After; c != nil {
		at := c.Time.UnixMicro()
		b.WriteString(` AND (` + t + `.recorded_at < ? OR (` + t + `.recorded_at = ? AND ` + t + `.seq < ?))`)
		args = append(args, at, at, c.Seq)
	}
	b.WriteString(` ORDER BY ` + t + `.recorded_at DESC, ` + t + `.seq DESC LIMIT ` + strconv.Itoa(limit))
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
	if err != nil {
		return nil, fmt.Errorf("%w: search audit log: %v", store.ErrUnavailable, err)
	}
	recs, err := scanAudit(rows, true)
	rows.Close()
	return recs, err
}

// AuditRecord returns the record seq of tenant with its patients.
func (db *DB) AuditRecord(ctx context.Context, tenant string, seq int64) (*audit.Record, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT `+auditSelect+db.patientsSelect()+` FROM audit_log l WHERE l.seq = ? AND l.tenant = ?`), seq, tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: read audit record: %v", store.ErrUnavailable, err)
	}
	recs, err := scanAudit(rows, true)
	rows.Close()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("audit record: %w", store.ErrNotFound)
	}
	return recs[0], nil
}
