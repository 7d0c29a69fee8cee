package sqlstore

// The outbox: events appended in the batch transaction (store.Outbox), and
// the dispatcher's bookkeeping (positions, leases, dead letters), which is
// not part of any unit and is written on the write pool directly, like the
// export jobs' state.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/store"
)

// outboxEvents appends the events of a unit's Outbox parts to evs.
func outboxEvents(evs []events.Event, parts []store.Part) []events.Event {
	for _, p := range parts {
		if o, ok := p.(store.Outbox); ok {
			evs = append(evs, o.Events...)
		}
	}
	return evs
}

// appendOutbox inserts a batch's events in its transaction, in one
// multi-row statement where the dialect takes one. It runs after the
// head lock of the batch, so their seq is commit order across processes.
func (db *DB) appendOutbox(ctx context.Context, tx *sql.Tx, evs []events.Event) error {
	if len(evs) == 0 {
		return nil
	}
	err := db.insertRows(ctx, tx, insertOutbox, len(evs), func(i int, a []any) []any {
		e := evs[i]
		return append(a, e.ID, e.Tenant, e.Type, e.Key, e.Time.UnixMicro(), e.JSON)
	})
	if err != nil {
		return fmt.Errorf("append outbox events: %w", err)
	}
	return nil
}

// signal wakes whoever waits for new outbox events in this process (the
// dispatcher's tail) when a batch that appended some commits, so that
// they leave within milliseconds of their commit rather than at the next
// poll. Other processes on the same database still find them by polling.
type signal struct {
	mu   sync.Mutex
	wake chan struct{}
}

// C is closed at the next Wake after it was taken.
func (s *signal) C() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.wake == nil {
		s.wake = make(chan struct{})
	}
	return s.wake
}

// Wake closes the channel handed out by C, if any.
func (s *signal) Wake() {
	s.mu.Lock()
	if s.wake != nil {
		close(s.wake)
		s.wake = nil
	}
	s.mu.Unlock()
}

// OutboxSignal is closed when a commit of this process appends outbox
// events after it was taken (dispatch.Signaler).
func (db *DB) OutboxSignal() <-chan struct{} { return db.outboxSignal.C() }

const outboxCols = `seq, id, tenant, type, okey, at, body`

func scanOutbox(rows *sql.Rows, limit int) ([]store.OutboxEvent, error) {
	defer rows.Close()
	out := make([]store.OutboxEvent, 0, min(limit, 16384))
	for rows.Next() {
		var e store.OutboxEvent
		var at int64
		if err := rows.Scan(&e.Seq, &e.ID, &e.Tenant, &e.Type, &e.Key, &at, &e.JSON); err != nil {
			return nil, fmt.Errorf("scan outbox event: %w", err)
		}
		e.Time = time.UnixMicro(at).UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// OutboxAfter returns at most limit events with seq > after, in seq order.
func (db *DB) OutboxAfter(ctx context.Context, after int64, limit int) ([]store.OutboxEvent, error) {
	// Every receiver polls this: a cached prepared statement, not a
	// parse per call (most of the cost on SQLite).
	rows, err := db.query(ctx, `SELECT `+outboxCols+` FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return scanOutbox(rows, limit)
}

// OutboxEvent returns the event with this seq (ErrNotFound: none).
func (db *DB) OutboxEvent(ctx context.Context, seq int64) (*store.OutboxEvent, error) {
	rows, err := db.query(ctx, `SELECT `+outboxCols+` FROM outbox WHERE seq = ?`, seq)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	out, err := scanOutbox(rows, 1)
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("outbox event %d: %w", seq, store.ErrNotFound)
	}
	return &out[0], nil
}

// OutboxHead returns the largest seq (0: empty): one index probe, where
// OutboxStats also counts every row.
func (db *DB) OutboxHead(ctx context.Context) (int64, error) {
	var head int64
	if err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM outbox`).Scan(&head); err != nil {
		return 0, fmt.Errorf("read outbox head: %w", err)
	}
	return head, nil
}

// OutboxStats returns the outbox's head and row count.
func (db *DB) OutboxStats(ctx context.Context) (store.OutboxStats, error) {
	var s store.OutboxStats
	err := db.read.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0), COUNT(*) FROM outbox`).Scan(&s.Head, &s.Rows)
	if err != nil {
		return s, fmt.Errorf("read outbox stats: %w", err)
	}
	if s.Head > 0 {
		err = db.read.QueryRowContext(ctx, db.d.Placeholders(`SELECT at FROM outbox WHERE seq = ?`), s.Head).Scan(&s.HeadAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return s, fmt.Errorf("read outbox stats: %w", err)
		}
	}
	return s, nil
}

// ClaimReceiver takes or renews the lease on receiver name for owner until
// the time given, creating the receiver at position start when it is new.
// ok is false (and nothing changes) while another owner's lease has not
// expired. An UPDATE that tests the lease in its WHERE clause is atomic on
// both databases, so two claimers never both win.
func (db *DB) ClaimReceiver(ctx context.Context, name, owner string, start int64, now, until time.Time) (store.Receiver, bool, error) {
	var r store.Receiver
	if _, err := db.write.ExecContext(ctx, db.d.Placeholders(`INSERT INTO outbox_receivers (name, pos, updated) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`),
		name, start, now.UnixMicro()); err != nil {
		return r, false, fmt.Errorf("add receiver: %w", err)
	}
	res, err := db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE outbox_receivers SET lease_owner = ?, lease_until = ?
		WHERE name = ? AND (lease_owner = ? OR lease_until < ?)`), owner, until.UnixMicro(), name, owner, now.UnixMicro())
	if err != nil {
		return r, false, fmt.Errorf("claim receiver: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return r, false, fmt.Errorf("claim receiver: %w", err)
	}
	r, err = db.receiver(ctx, name)
	return r, n == 1 && err == nil, err
}

func (db *DB) receiver(ctx context.Context, name string) (store.Receiver, error) {
	r := store.Receiver{Name: name}
	err := db.write.QueryRowContext(ctx, db.d.Placeholders(`SELECT pos, lease_owner, lease_until, delivered, updated FROM outbox_receivers WHERE name = ?`), name).
		Scan(&r.Pos, &r.LeaseOwner, &r.LeaseUntil, &r.Delivered, &r.Updated)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("receiver: %w", store.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("read receiver: %w", err)
	}
	return r, nil
}

// AdvanceReceiver moves receiver name to pos (counting delivered events)
// and extends the lease, only while owner holds it; ok is false when the
// lease was lost (another node took it after it expired).
func (db *DB) AdvanceReceiver(ctx context.Context, name, owner string, pos, delivered int64, now, until time.Time) (bool, error) {
	res, err := db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE outbox_receivers SET pos = ?, delivered = delivered + ?, updated = ?, lease_until = ?
		WHERE name = ? AND lease_owner = ? AND pos <= ?`), pos, delivered, now.UnixMicro(), until.UnixMicro(), name, owner, pos)
	if err != nil {
		return false, fmt.Errorf("advance receiver: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("advance receiver: %w", err)
	}
	return n == 1, nil
}

// ReleaseReceiver gives up owner's lease (on shutdown), so another node
// may take over at once.
func (db *DB) ReleaseReceiver(ctx context.Context, name, owner string) error {
	if _, err := db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE outbox_receivers SET lease_until = 0 WHERE name = ? AND lease_owner = ?`), name, owner); err != nil {
		return fmt.Errorf("release receiver: %w", err)
	}
	return nil
}

// Receivers lists every receiver by name.
func (db *DB) Receivers(ctx context.Context) ([]store.Receiver, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT name, pos, lease_owner, lease_until, delivered, updated FROM outbox_receivers ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	defer rows.Close()
	var out []store.Receiver
	for rows.Next() {
		var r store.Receiver
		if err := rows.Scan(&r.Name, &r.Pos, &r.LeaseOwner, &r.LeaseUntil, &r.Delivered, &r.Updated); err != nil {
			return nil, fmt.Errorf("scan receiver: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list receivers: %w", err)
	}
	return out, nil
}

// DeadLetter records that receiver name gave up on event seq and moves
// its position past it, in one transaction, only while owner holds the
// lease (ok false otherwise, and nothing changes).
func (db *DB) DeadLetter(ctx context.Context, name, owner string, seq int64, attempts int, lastErr string, now, until time.Time) (ok bool, err error) {
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("dead letter: %w", err)
	}
	defer func() {
		if !ok || err != nil {
			tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, db.d.Placeholders(`UPDATE outbox_receivers SET pos = ?, updated = ?, lease_until = ?
		WHERE name = ? AND lease_owner = ? AND pos < ?`), seq, now.UnixMicro(), until.UnixMicro(), name, owner, seq)
	if err != nil {
		return false, fmt.Errorf("dead letter: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return false, err
	}
	if _, err = tx.ExecContext(ctx, db.d.Placeholders(`INSERT INTO outbox_dead (receiver, seq, attempts, last_error, at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (receiver, seq) DO UPDATE SET attempts = excluded.attempts, last_error = excluded.last_error, at = excluded.at, replay = 0`),
		name, seq, attempts, lastErr, now.UnixMicro()); err != nil {
		return false, fmt.Errorf("dead letter: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return false, fmt.Errorf("dead letter: %w", err)
	}
	return true, nil
}

// DeadLetters lists dead letters, of one receiver ("" : all), by receiver
// and seq; replayOnly lists only those asked to be replayed.
func (db *DB) DeadLetters(ctx context.Context, receiver string, replayOnly bool, limit int) ([]store.DeadLetter, error) {
	q := `SELECT receiver, seq, attempts, last_error, at, replay FROM outbox_dead WHERE (? = '' OR receiver = ?)`
	if replayOnly {
		q += ` AND replay = 1`
	}
	q += ` ORDER BY receiver, seq LIMIT ?`
	rows, err := db.write.QueryContext(ctx, db.d.Placeholders(q), receiver, receiver, limit)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetter
	for rows.Next() {
		var d store.DeadLetter
		var replay int
		if err := rows.Scan(&d.Receiver, &d.Seq, &d.Attempts, &d.LastError, &d.At, &replay); err != nil {
			return nil, fmt.Errorf("scan dead letter: %w", err)
		}
		d.Replay = replay != 0
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// MarkReplay asks for dead letters of receiver ("" : all) to be delivered
// again: the one with this seq, or all of them when seq is 0. It returns
// how many were marked.
func (db *DB) MarkReplay(ctx context.Context, receiver string, seq int64) (int64, error) {
	return db.deadExec(ctx, "replay dead letters", `UPDATE outbox_dead SET replay = 1`, receiver, seq)
}

// DropDead deletes dead letters of receiver ("" : all): the one with this
// seq, or all of them when seq is 0.
func (db *DB) DropDead(ctx context.Context, receiver string, seq int64) (int64, error) {
	return db.deadExec(ctx, "drop dead letters", `DELETE FROM outbox_dead`, receiver, seq)
}

func (db *DB) deadExec(ctx context.Context, what, stmt, receiver string, seq int64) (int64, error) {
	res, err := db.write.ExecContext(ctx, db.d.Placeholders(stmt+` WHERE (? = '' OR receiver = ?) AND (? = 0 OR seq = ?)`), receiver, receiver, seq, seq)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return n, nil
}

// Replayed settles a replayed dead letter: delivered, it is deleted;
// failed again, it stays with its new error and is no longer marked.
func (db *DB) Replayed(ctx context.Context, receiver string, seq int64, delivered bool, lastErr string, now time.Time) error {
	var err error
	if delivered {
		_, err = db.write.ExecContext(ctx, db.d.Placeholders(`DELETE FROM outbox_dead WHERE receiver = ? AND seq = ?`), receiver, seq)
	} else {
		_, err = db.write.ExecContext(ctx, db.d.Placeholders(`UPDATE outbox_dead SET replay = 0, attempts = attempts + 1, last_error = ?, at = ? WHERE receiver = ? AND seq = ?`),
			lastErr, now.UnixMicro(), receiver, seq)
	}
	if err != nil {
		return fmt.Errorf("settle replayed dead letter: %w", err)
	}
	return nil
}

// Webhooks lists the registered webhooks by id.
func (db *DB) Webhooks(ctx context.Context) ([]store.Webhook, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT id, tenant, url, secret, types, created FROM webhooks ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	var out []store.Webhook
	for rows.Next() {
		var h store.Webhook
		var types string
		var created int64
		if err := rows.Scan(&h.ID, &h.Tenant, &h.URL, &h.Secret, &types, &created); err != nil {
			return nil, fmt.Errorf("scan webhook: %w", err)
		}
		if types != "" {
			h.Types = strings.Split(types, ",")
		}
		h.Created = time.UnixMicro(created).UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	return out, nil
}

// SubscriptionOwners lists the recorded owners of FHIR Subscriptions.
func (db *DB) SubscriptionOwners(ctx context.Context) ([]store.SubscriptionRow, error) {
	rows, err := db.read.QueryContext(ctx, `SELECT tenant, id, owner, updated FROM subscription_owners ORDER BY tenant, id`)
	if err != nil {
		return nil, fmt.Errorf("list subscription owners: %w", err)
	}
	defer rows.Close()
	var out []store.SubscriptionRow
	for rows.Next() {
		var r store.SubscriptionRow
		var at int64
		if err := rows.Scan(&r.Tenant, &r.ID, &r.Owner, &at); err != nil {
			return nil, fmt.Errorf("scan subscription owner: %w", err)
		}
		r.Updated = time.UnixMicro(at).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list subscription owners: %w", err)
	}
	return out, nil
}
