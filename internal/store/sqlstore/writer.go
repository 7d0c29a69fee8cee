package sqlstore

// The group-committing writer: one goroutine drains queued units and
// commits them as one transaction, checking every unit's preconditions.

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Commit queues u for the next batch and waits until it is durable.
func (db *DB) Commit(ctx context.Context, u *store.Unit) error {
	j := &job{u: u, ok: make(chan struct{})}
	select {
	case db.queue <- j:
	case <-db.done:
		return store.ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("queue commit: %w", ctx.Err())
	}
	// Once queued, the unit will be committed or failed by the writer; wait
	// for it whatever the caller's context says, so that the caller never
	// reports a failure for a write that then commits.
	<-j.ok
	return j.err
}

func (db *DB) run() {
	defer close(db.closed)
	batch := make([]*job, 0, db.opts.MaxBatch)
	// A unit with guards always opens its batch, so that its guards see
	// exactly what was committed before it (the units ahead of it in a
	// batch are not yet written when the batch's checks run). pending is
	// such a unit, taken from the queue while a batch was being filled.
	var pending *job
	for {
		var first *job
		if pending != nil {
			first, pending = pending, nil
		} else {
			select {
			case first = <-db.queue:
			case <-db.done:
				// Drain what is queued, then stop.
				for {
					select {
					case j := <-db.queue:
						db.commitIsolated([]*job{j})
					default:
						return
					}
				}
			}
		}
		batch = append(batch[:0], first)
	drain:
		for len(batch) < db.opts.MaxBatch {
			select {
			case j := <-db.queue:
				if len(j.u.Guards) > 0 {
					pending = j
					break drain
				}
				batch = append(batch, j)
			default:
				break drain
			}
		}
		db.commitIsolated(batch)
	}
}

// commitIsolated commits a batch; if the transaction fails, each unit is
// retried alone so that one bad unit cannot fail the others.
func (db *DB) commitIsolated(batch []*job) {
	err := db.commitBatch(batch)
	if err == nil {
		n := 0
		for _, j := range batch {
			n += len(j.u.Writes)
		}
		db.maybeAnalyze(n)
	}
	if err != nil && len(batch) > 1 {
		for _, j := range batch {
			db.commitIsolated([]*job{j})
		}
		return
	}
	for _, j := range batch {
		if err != nil {
			j.err = fmt.Errorf("%w: commit: %v", store.ErrUnavailable, err)
		}
		close(j.ok)
	}
}

type rkey struct{ tenant, typ, id string }

// The writer's fixed queries besides its inserts, prepared once on
// dialects that run row at a time (see txQueryRow and txExec).
const (
	qMaxSeq         = `SELECT COALESCE(MAX(seq), 0) FROM resource_versions`
	qKeyState       = `SELECT state FROM keys WHERE id = ?`
	qKeyWrapped     = `SELECT wrapped, state FROM keys WHERE id = ?`
	qKeyExists      = `SELECT 1 FROM keys WHERE id = ?`
	qCurrentVersion = `SELECT version, rid FROM resources WHERE tenant = ? AND type = ? AND id = ?`
	qInsertKey      = `INSERT INTO keys (id, purpose, tenant, wrapped, created, kek, scope, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`
)

var writerQueries = []string{qMaxSeq, qKeyState, qKeyWrapped, qKeyExists, qCurrentVersion, qInsertKey}

func (db *DB) commitBatch(batch []*job) (err error) {
	if ok, err := db.appendAudit(batch); ok || err != nil {
		return err
	}
	db.headKnown = false
	ctx, cancel := context.WithTimeout(context.Background(), db.opts.CommitTimeout)
	defer cancel()
	tx, err := db.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	head, err := readHead(db.txQueryRow(ctx, tx, db.d.LockHead))
	if err != nil {
		return err
	}

	// Current versions of every resource the batch writes.
	keys := batchKeys(batch)
	current, rids, err := db.currentVersions(ctx, tx, keys)
	if err != nil {
		return err
	}

	var nextSeq int64
	if len(keys) > 0 {
		// Writers serialise on the head row locked above, so the next
		// commit order number is simply one past the largest.
		if err = db.txQueryRow(ctx, tx, qMaxSeq).Scan(&nextSeq); err != nil {
			return fmt.Errorf("read version sequence: %w", err)
		}
	}
	st := &staged{final: map[rkey]seqWrite{}, nextSeq: nextSeq, current: current, rids: rids}
	states := map[string]string{}
	newKeys := map[string][]byte{} // keys stored by this batch (Write.NewKey)
	read := map[string]keyRow{}    // keys read up front (prefetchKeys)
	if err = db.prefetchKeys(ctx, tx, batch, states, read); err != nil {
		return err
	}
	// The batch's outbox events, in unit order, go in as one multi-row
	// insert after the loop rather than one statement per unit.
	var evs []events.Event
	for i, j := range batch {
		j.err = db.check(ctx, tx, j.u, current, states, newKeys, read)
		if j.err == nil && len(j.u.Guards) > 0 {
			if i > 0 {
				// run never puts a guarded unit after another; refuse
				// rather than check against a half-written state.
				j.err = fmt.Errorf("%w: guarded unit not first in its batch", store.ErrConflict)
			} else {
				j.err = db.checkGuards(ctx, tx, j.u.Guards)
			}
			if j.err != nil && !errors.Is(j.err, store.ErrConflict) {
				return j.err
			}
		}
		if j.err != nil {
			markConflict(j.u.Audit)
			continue
		}
		st.add(j.u)
		if err = db.insertNewKeys(ctx, tx, j.u.Writes, states, newKeys); err != nil {
			return err
		}
		if err = db.applyParts(ctx, tx, j.u.Parts); err != nil {
			return err
		}
		evs = outboxEvents(evs, j.u.Parts)
		if changesKeys(j.u.Parts) {
			// The units after it see the new states and wrapped forms.
			clear(states)
			clear(read)
		}
	}

	if err = db.appendOutbox(ctx, tx, evs); err != nil {
		return err
	}
	if err = db.insertVersions(ctx, tx, st.writes); err != nil {
		return err
	}
	if err = db.upsertCurrent(ctx, tx, st.order, st.final); err != nil {
		return err
	}
	if err = db.writeIndex(ctx, tx, st.order, st.final, st.reindex, rids); err != nil {
		return err
	}

	// Chain the audit records in batch order. Records of failed units are
	// chained too: a refusal or conflict is part of the ledger.
	if head, err = db.chainAudit(ctx, tx, head, batch); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.head, db.headKnown = head, true
	db.transactions.Add(1)
	if len(evs) > 0 {
		db.outboxSignal.Wake()
	}
	return nil
}

// check verifies a unit's preconditions against the state as of the units
// before it in the batch. states caches the batch's data-key states.
func (db *DB) check(ctx context.Context, tx *sql.Tx, u *store.Unit, current map[rkey]int64, states map[string]string, newKeys map[string][]byte, read map[string]keyRow) error {
	seen := map[rkey]int64{}
	for _, w := range u.Writes {
		k := rkey{w.Tenant, w.Type, w.ID}
		cur, ok := seen[k]
		if !ok {
			cur = current[k]
		}
		if w.Version != cur+1 {
			return fmt.Errorf("%w: %s/%s is at version %d, not %d", store.ErrConflict, w.Type, w.ID, cur, w.Version-1)
		}
		seen[k] = w.Version
		if w.NewKey != nil {
			if err := db.checkNewKey(ctx, tx, w.NewKey, newKeys, read); err != nil {
				return err
			}
			continue // its key is stored with it: nothing to fence
		}
		if err := db.checkSealKey(ctx, tx, w, states); err != nil {
			return err
		}
	}
	return db.checkParts(ctx, tx, u.Parts)
}

// checkSealKey refuses a version sealed under a retiring or destroyed
// data key (store.ErrKeyRetired). This is the fence that makes destroying
// a key safe: the check runs in the write transaction, after the head
// lock that serialises every writer of every node, so once RetireKey has
// committed no new version can land under the key, and a re-seal pass
// that starts after that commit sees every version the key sealed. A
// body that is not an envelope (tests' plain bytes) or names a key the
// store does not hold is not Ward's to judge here.
func (db *DB) checkSealKey(ctx context.Context, tx *sql.Tx, w store.Write, states map[string]string) error {
	if w.Deleted || len(w.Body) == 0 {
		return nil
	}
	kid, err := seal.EnvelopeKeyID(w.Body)
	if err != nil {
		return nil
	}
	state, ok := states[kid]
	if !ok {
		err := db.txQueryRow(ctx, tx, qKeyState, kid).Scan(&state)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check data key: %w", err)
		}
		states[kid] = state
	}
	if state == store.KeyRetiring || state == store.KeyDestroyed {
		return fmt.Errorf("%w: %s/%s sealed under %s (%s)", store.ErrKeyRetired, w.Type, w.ID, kid, state)
	}
	return nil
}

// checkNewKey lets a write store the key it was sealed under unless
// another key holds its id (ErrConflict) or it was destroyed
// (ErrKeyRetired). The same key, stored by an earlier write, is fine.
func (db *DB) checkNewKey(ctx context.Context, tx *sql.Tx, k *store.Key, newKeys map[string][]byte, read map[string]keyRow) error {
	if w, ok := newKeys[k.ID]; ok {
		if !bytes.Equal(w, k.Wrapped) {
			return fmt.Errorf("%w: key %s already exists", store.ErrConflict, k.ID)
		}
		return nil
	}
	var wrapped []byte
	var state string
	var err error
	if r, ok := read[k.ID]; ok {
		wrapped, state = r.wrapped, r.state
		if !r.found {
			err = sql.ErrNoRows
		}
	} else {
		err = db.txQueryRow(ctx, tx, qKeyWrapped, k.ID).Scan(&wrapped, &state)
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("check new key: %w", err)
	case state != store.KeyActive:
		return fmt.Errorf("%w: key %s is %s", store.ErrKeyRetired, k.ID, state)
	case !bytes.Equal(wrapped, k.Wrapped):
		return fmt.Errorf("%w: key %s already exists", store.ErrConflict, k.ID)
	}
	newKeys[k.ID] = k.Wrapped
	return nil
}

// keyRow is a key as prefetchKeys read it (found: it has a row).
type keyRow struct {
	wrapped []byte
	state   string
	found   bool
}

// prefetchKeys reads, in one statement, every key that the batch's
// writes are sealed under or store (Write.NewKey): with per-patient keys
// a batch names as many keys as patients, and checking each with a
// statement of its own would cost a round trip per patient where a
// tenant's batch costs one. It fills states (checkSealKey; "" for no
// row) and read (checkNewKey). It runs after the head lock, like the
// checks it stands in for, so it sees every retirement committed before
// the batch. On a dialect that runs row at a time (no round trips) the
// checks read keys one by one, as before.
func (db *DB) prefetchKeys(ctx context.Context, tx *sql.Tx, batch []*job, states map[string]string, read map[string]keyRow) error {
	if db.d.RowAtATime {
		return nil
	}
	var ids []any
	seen := map[string]bool{}
	for _, j := range batch {
		for _, w := range j.u.Writes {
			var kid string
			switch {
			case w.NewKey != nil:
				kid = w.NewKey.ID
			case w.Deleted || len(w.Body) == 0:
				continue
			default:
				var err error
				if kid, err = seal.EnvelopeKeyID(w.Body); err != nil {
					continue
				}
			}
			if !seen[kid] {
				seen[kid] = true
				ids = append(ids, kid)
			}
		}
	}
	if len(ids) == 0 || len(ids) > db.d.MaxParams {
		return nil
	}
	rows, err := tx.QueryContext(ctx, db.d.Placeholders(`SELECT id, wrapped, state FROM keys WHERE id IN (`+strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")+`)`), ids...)
	if err != nil {
		return fmt.Errorf("read data keys: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var r keyRow
		if err := rows.Scan(&id, &r.wrapped, &r.state); err != nil {
			return fmt.Errorf("read data keys: %w", err)
		}
		r.found = true
		read[id], states[id] = r, r.state
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read data keys: %w", err)
	}
	for _, id := range ids {
		if _, ok := read[id.(string)]; !ok {
			read[id.(string)], states[id.(string)] = keyRow{}, ""
		}
	}
	return nil
}

// insertNewKeys stores the keys of a unit's writes not stored yet.
func (db *DB) insertNewKeys(ctx context.Context, tx *sql.Tx, ws []store.Write, states map[string]string, newKeys map[string][]byte) error {
	for _, w := range ws {
		k := w.NewKey
		if k == nil {
			continue
		}
		if _, ok := newKeys[k.ID]; ok {
			continue
		}
		if err := db.applyParts(ctx, tx, []store.Part{store.NewKey{Key: k}}); err != nil {
			return err
		}
		newKeys[k.ID], states[k.ID] = k.Wrapped, store.KeyActive
	}
	return nil
}

// changesKeys reports whether parts store, re-wrap, retire, destroy or
// erase a key: what prefetchKeys read may no longer hold after them.
func changesKeys(parts []store.Part) bool {
	for _, p := range parts {
		switch p.(type) {
		case store.NewKey, store.RewrapKey, store.RetireKey, store.DestroyKey, store.ErasePatient:
			return true
		}
	}
	return false
}

// checkGuards runs each guard's search inside the write transaction (after
// the head lock, so after every earlier commit) and compares its matches
// with the expected set.
func (db *DB) checkGuards(ctx context.Context, tx *sql.Tx, guards []store.Guard) error {
	for gi, g := range guards {
		base, args, err := searchBase(g.Query)
		if err != nil {
			return err
		}
		want := make(map[store.Ref]bool, len(g.Match))
		for _, m := range g.Match {
			want[m] = true
		}
		rows, err := tx.QueryContext(ctx, db.d.Placeholders(`SELECT r.type, r.id`+base+` LIMIT `+strconv.Itoa(len(want)+1)), args...)
		if err != nil {
			return fmt.Errorf("check guard: %w", err)
		}
		n, extra := 0, false
		for rows.Next() {
			var ref store.Ref
			if err := rows.Scan(&ref.Type, &ref.ID); err != nil {
				rows.Close()
				return fmt.Errorf("check guard: %w", err)
			}
			n++
			if !want[ref] {
				extra = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("check guard: %w", err)
		}
		if extra || n != len(want) {
			return fmt.Errorf("%w: condition %d no longer matches what it matched when read", store.ErrConflict, gi)
		}
	}
	return nil
}

func (db *DB) currentVersions(ctx context.Context, tx *sql.Tx, keys []rkey) (map[rkey]int64, map[rkey]int64, error) {
	out := make(map[rkey]int64, len(keys))
	rids := make(map[rkey]int64, len(keys))
	if st, ok := db.rowStmts[qCurrentVersion]; ok {
		// One prepared lookup per key: the IN list below has as many
		// tuples as the batch has writes, so its text differs from batch
		// to batch and SQLite parsed and planned it each time (3% of an
		// import's CPU, in the one goroutine every write waits for).
		txst := tx.StmtContext(ctx, st)
		defer txst.Close()
		for _, k := range keys {
			if _, seen := out[k]; seen {
				continue
			}
			var v, rid int64
			err := txst.QueryRowContext(ctx, k.tenant, k.typ, k.id).Scan(&v, &rid)
			switch {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return nil, nil, fmt.Errorf("read current versions: %w", err)
			default:
				out[k] = v
				rids[k] = rid
			}
		}
		return out, rids, nil
	}
	const cols = 3
	for len(keys) > 0 {
		n := min(len(keys), db.d.MaxParams/cols)
		chunk := keys[:n]
		keys = keys[n:]
		var b strings.Builder
		b.WriteString(`SELECT tenant, type, id, version, rid FROM resources WHERE (tenant, type, id) IN (VALUES `)
		args := make([]any, 0, n*cols)
		for i, k := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?)")
			args = append(args, k.tenant, k.typ, k.id)
		}
		b.WriteString(")")
		rows, err := tx.QueryContext(ctx, db.d.Placeholders(b.String()), args...)
		if err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
		for rows.Next() {
			var k rkey
			var v, rid int64
			if err := rows.Scan(&k.tenant, &k.typ, &k.id, &v, &rid); err != nil {
				rows.Close()
				return nil, nil, fmt.Errorf("scan current version: %w", err)
			}
			out[k] = v
			rids[k] = rid
		}
		if err := rows.Close(); err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, nil, fmt.Errorf("read current versions: %w", err)
		}
	}
	return out, rids, nil
}

// batchKeys lists the resources a batch writes or reindexes.
func batchKeys(batch []*job) []rkey {
	var keys []rkey
	for _, j := range batch {
		for _, w := range j.u.Writes {
			keys = append(keys, rkey{w.Tenant, w.Type, w.ID})
		}
	}
	for _, j := range batch {
		for _, r := range j.u.Reindex {
			keys = append(keys, rkey{r.Tenant, r.Type, r.ID})
		}
	}
	return keys
}

// markConflict raises the outcome of the records of a unit whose
// precondition failed: they are committed all the same.
func markConflict(recs []*audit.Record) {
	for _, r := range recs {
		if r.Outcome < audit.OutcomeMinor {
			r.Outcome = audit.OutcomeMinor
		}
		if r.Detail == "" {
			r.Detail = "conflict"
		}
	}
}

// staged is what a batch writes to the resource tables: every version in
// commit order, the last version of each resource, the reindexed rows.
type staged struct {
	writes  []seqWrite
	final   map[rkey]seqWrite
	order   []rkey
	reindex []store.Reindex
	nextSeq int64
	current map[rkey]int64 // current version, advanced by each unit
	rids    map[rkey]int64 // rid of each resource, a new one's first seq
}

// add stages the writes of a unit whose preconditions held.
func (st *staged) add(u *store.Unit) {
	for _, w := range u.Writes {
		k := rkey{w.Tenant, w.Type, w.ID}
		st.current[k] = w.Version
		if _, seen := st.final[k]; !seen {
			st.order = append(st.order, k)
		}
		st.nextSeq++
		if st.rids[k] == 0 {
			st.rids[k] = st.nextSeq // a new resource's rid is its first seq
		}
		sw := seqWrite{Write: w, seq: st.nextSeq, rid: st.rids[k]}
		st.final[k] = sw
		st.writes = append(st.writes, sw)
	}
	st.reindex = append(st.reindex, u.Reindex...)
}
