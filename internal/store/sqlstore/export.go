package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/store"
)

// The export job tables are written outside the group-committing writer:
// they hold no ledger records and no resource versions, and their chunks
// are large. On SQLite the statements wait for the single write connection
// between two writer batches.

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicros(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.UnixMicro(n).UTC()
}

func joinList(xs []string) string { return strings.Join(xs, " ") }

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, " ")
}

// CreateExportJob stores a new job.
func (db *DB) CreateExportJob(ctx context.Context, j *store.ExportJob) error {
	_, err := db.write.ExecContext(ctx, db.d.Placeholders(`INSERT INTO export_jobs
		(id, tenant, requester, role, scopes, kind, group_id, types, since, request, status, progress, created, tx_time, expires,
		 purpose, deid_method, deid_project)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		j.ID, j.Tenant, j.Requester, j.Role, joinList(j.Scopes), j.Kind, j.GroupID, joinList(j.Types), micros(j.Since),
		j.Request, j.Status, j.Progress, micros(j.Created), micros(j.TxTime), micros(j.Expires),
		j.Purpose, j.Deidentify, j.Project)
	if err != nil {
		return fmt.Errorf("%w: create export job: %v", store.ErrUnavailable, err)
	}
	return nil
}

const exportJobCols = `id, tenant, requester, role, scopes, kind, group_id, types, since, request, status, progress, created, tx_time, expires, error, owner, lease_until, attempts, purpose, deid_method, deid_project`

func scanExportJob(row interface{ Scan(...any) error }) (*store.ExportJob, error) {
	var j store.ExportJob
	var scopes, types string
	var since, created, tx, expires, lease int64
	if err := row.Scan(&j.ID, &j.Tenant, &j.Requester, &j.Role, &scopes, &j.Kind, &j.GroupID, &types, &since, &j.Request,
		&j.Status, &j.Progress, &created, &tx, &expires, &j.Error, &j.Owner, &lease, &j.Attempts, &j.Purpose, &j.Deidentify, &j.Project); err != nil {
		return nil, err
	}
	j.Scopes, j.Types = splitList(scopes), splitList(types)
	j.Since, j.Created, j.TxTime, j.Expires, j.Lease = fromMicros(since), fromMicros(created), fromMicros(tx), fromMicros(expires), fromMicros(lease)
	return &j, nil
}

// ExportJob reads a job of a tenant.
func (db *DB) ExportJob(ctx context.Context, tenant, id string) (*store.ExportJob, error) {
	j, err := scanExportJob(db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT `+exportJobCols+` FROM export_jobs WHERE tenant = ? AND id = ?`), tenant, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("%w: read export job: %v", store.ErrUnavailable, err)
	}
	return j, nil
}

// ClaimExportJob takes the oldest queued job, or a running one whose lease
// ran out before now, for owner until lease; nil when there is none. The
// claim is a compare-and-set on the job's status and lease, so of several
// nodes exactly one gets a job.
func (db *DB) ClaimExportJob(ctx context.Context, owner string, now, lease time.Time) (*store.ExportJob, error) {
	q := db.d.Placeholders
	rows, err := db.read.QueryContext(ctx, q(`SELECT id, status, lease_until FROM export_jobs
		WHERE (status = ? OR (status = ? AND lease_until < ?)) AND expires > ? ORDER BY created LIMIT 8`),
		store.ExportQueued, store.ExportRunning, micros(now), micros(now))
	if err != nil {
		return nil, fmt.Errorf("%w: find export jobs: %v", store.ErrUnavailable, err)
	}
	type cand struct {
		id, status string
		lease      int64
	}
	var cands []cand
	for rows.Next() {
		var c cand
		if err := rows.Scan(&c.id, &c.status, &c.lease); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%w: find export jobs: %v", store.ErrUnavailable, err)
		}
		cands = append(cands, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: find export jobs: %v", store.ErrUnavailable, err)
	}
	for _, c := range cands {
		res, err := db.write.ExecContext(ctx, q(`UPDATE export_jobs SET status = ?, owner = ?, lease_until = ?, attempts = attempts + 1
			WHERE id = ? AND status = ? AND lease_until = ?`), store.ExportRunning, owner, micros(lease), c.id, c.status, c.lease)
		if err != nil {
			return nil, fmt.Errorf("%w: claim export job: %v", store.ErrUnavailable, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			j, err := scanExportJob(db.read.QueryRowContext(ctx, q(`SELECT `+exportJobCols+` FROM export_jobs WHERE id = ?`), c.id))
			if err != nil {
				return nil, fmt.Errorf("%w: read claimed export job: %v", store.ErrUnavailable, err)
			}
			return j, nil
		}
	}
	return nil, nil
}

// owned runs fn in a transaction that first renews the job's lease, so fn
// writes only while owner still holds a running job: a job cancelled or
// claimed by another node is store.ErrConflict and fn does not run. On
// PostgreSQL the renewal locks the job row until commit, so a concurrent
// cancel (which deletes the job row first) waits and then deletes what fn
// wrote.
func (db *DB) owned(ctx context.Context, id, owner string, lease time.Time, progress *string, fn func(tx *sql.Tx) error) error {
	q := db.d.Placeholders
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("%w: begin: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	var res sql.Result
	if progress != nil {
		res, err = tx.ExecContext(ctx, q(`UPDATE export_jobs SET lease_until = ?, progress = ? WHERE id = ? AND owner = ? AND status = ?`), micros(lease), *progress, id, owner, store.ExportRunning)
	} else {
		res, err = tx.ExecContext(ctx, q(`UPDATE export_jobs SET lease_until = ? WHERE id = ? AND owner = ? AND status = ?`), micros(lease), id, owner, store.ExportRunning)
	}
	if err != nil {
		return fmt.Errorf("%w: renew export lease: %v", store.ErrUnavailable, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: export job %s is no longer this worker's", store.ErrConflict, id)
	}
	if fn != nil {
		if err := fn(tx); err != nil {
			return fmt.Errorf("%w: %v", store.ErrUnavailable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
	}
	return nil
}

// RenewExportJob extends owner's lease and sets the progress text.
func (db *DB) RenewExportJob(ctx context.Context, id, owner string, lease time.Time, progress string) error {
	return db.owned(ctx, id, owner, lease, &progress, nil)
}

// ResetExportJob removes the output a previous attempt left.
func (db *DB) ResetExportJob(ctx context.Context, id, owner string, lease time.Time) error {
	return db.owned(ctx, id, owner, lease, nil, func(tx *sql.Tx) error {
		for _, t := range []string{"export_chunks", "export_parts"} {
			if _, err := tx.ExecContext(ctx, db.d.Placeholders(`DELETE FROM `+t+` WHERE job_id = ?`), id); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddExportChunk stores one sealed chunk of a part.
func (db *DB) AddExportChunk(ctx context.Context, id, owner string, lease time.Time, part, chunk int, body []byte) error {
	return db.owned(ctx, id, owner, lease, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.Placeholders(`INSERT INTO export_chunks (job_id, part, chunk, body) VALUES (?, ?, ?, ?)`), id, part, chunk, body)
		return err
	})
}

// AddExportPart records a finished part.
func (db *DB) AddExportPart(ctx context.Context, id, owner string, lease time.Time, p store.ExportPart) error {
	return db.owned(ctx, id, owner, lease, nil, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, db.d.Placeholders(`INSERT INTO export_parts (job_id, part, type, lines, bytes, refs) VALUES (?, ?, ?, ?, ?, ?)`),
			id, p.Part, p.Type, p.Lines, p.Bytes, strings.Join(p.Refs, "\n"))
		return err
	})
}

// FinishExportJob ends owner's job as completed or failed; its output is
// kept until expires.
func (db *DB) FinishExportJob(ctx context.Context, id, owner, status, reason string, expires time.Time) error {
	res, err := db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE export_jobs SET status = ?, error = ?, expires = ?, owner = '', lease_until = 0, progress = ''
		WHERE id = ? AND owner = ? AND status = ?`), status, reason, micros(expires), id, owner, store.ExportRunning)
	if err != nil {
		return fmt.Errorf("%w: finish export job: %v", store.ErrUnavailable, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("%w: export job %s is no longer this worker's", store.ErrConflict, id)
	}
	return nil
}

// ExportParts lists a job's parts in order, without their refs.
func (db *DB) ExportParts(ctx context.Context, id string) ([]store.ExportPart, error) {
	rows, err := db.read.QueryContext(ctx, db.d.Placeholders(`SELECT part, type, lines, bytes FROM export_parts WHERE job_id = ? ORDER BY part`), id)
	if err != nil {
		return nil, fmt.Errorf("%w: list export parts: %v", store.ErrUnavailable, err)
	}
	defer rows.Close()
	var out []store.ExportPart
	for rows.Next() {
		var p store.ExportPart
		if err := rows.Scan(&p.Part, &p.Type, &p.Lines, &p.Bytes); err != nil {
			return nil, fmt.Errorf("%w: list export parts: %v", store.ErrUnavailable, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%w: list export parts: %v", store.ErrUnavailable, err)
	}
	return out, nil
}

// ExportPart reads one part with its refs.
func (db *DB) ExportPart(ctx context.Context, id string, part int) (*store.ExportPart, error) {
	var p store.ExportPart
	var refs string
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT part, type, lines, bytes, refs FROM export_parts WHERE job_id = ? AND part = ?`), id, part).
		Scan(&p.Part, &p.Type, &p.Lines, &p.Bytes, &refs)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("%w: read export part: %v", store.ErrUnavailable, err)
	}
	if refs != "" {
		p.Refs = strings.Split(refs, "\n")
	}
	return &p, nil
}

// ExportChunk reads one sealed chunk (store.ErrNotFound after the last).
func (db *DB) ExportChunk(ctx context.Context, id string, part, chunk int) ([]byte, error) {
	var body []byte
	err := db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT body FROM export_chunks WHERE job_id = ? AND part = ? AND chunk = ?`), id, part, chunk).Scan(&body)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, store.ErrNotFound
	case err != nil:
		return nil, fmt.Errorf("%w: read export chunk: %v", store.ErrUnavailable, err)
	}
	return body, nil
}

// DeleteExportJob removes a tenant's job and its output; false if there
// was no such job. The job row goes first: a worker writing into it holds
// that row's lock (PostgreSQL) or the write connection (SQLite), so what it
// wrote is committed before the output is deleted.
func (db *DB) DeleteExportJob(ctx context.Context, tenant, id string) (bool, error) {
	q := db.d.Placeholders
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("%w: begin: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, q(`DELETE FROM export_jobs WHERE tenant = ? AND id = ?`), tenant, id)
	if err != nil {
		return false, fmt.Errorf("%w: delete export job: %v", store.ErrUnavailable, err)
	}
	n, _ := res.RowsAffected()
	if n == 0 {
		return false, nil
	}
	for _, t := range []string{"export_chunks", "export_parts"} {
		if _, err := tx.ExecContext(ctx, q(`DELETE FROM `+t+` WHERE job_id = ?`), id); err != nil {
			return false, fmt.Errorf("%w: delete export output: %v", store.ErrUnavailable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
	}
	return true, nil
}

// SweepExportJobs deletes jobs that expired before now, with their output,
// and any output whose job is gone; it returns the jobs deleted.
func (db *DB) SweepExportJobs(ctx context.Context, now time.Time) (int, error) {
	q := db.d.Placeholders
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("%w: begin: %v", store.ErrUnavailable, err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, q(`DELETE FROM export_jobs WHERE expires < ?`), micros(now))
	if err != nil {
		return 0, fmt.Errorf("%w: sweep export jobs: %v", store.ErrUnavailable, err)
	}
	n, _ := res.RowsAffected()
	for _, t := range []string{"export_chunks", "export_parts"} {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+t+` WHERE job_id NOT IN (SELECT id FROM export_jobs)`); err != nil {
			return 0, fmt.Errorf("%w: sweep export output: %v", store.ErrUnavailable, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
	}
	return int(n), nil
}
