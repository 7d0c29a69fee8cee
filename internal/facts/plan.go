package facts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/store"
)

// The access layer asks the same few questions about every patient (is
// this clinician in their care, what are their consents), which differ
// only in the patient. Parsing and planning such a question costs more
// than the database answering it, so each shape is planned once, for a
// sentinel patient, and bound to a real one by replacing the sentinel's
// values (its id and the keyed hash of its reference) in the arguments.
// The sentinel is a random id drawn when the process starts, so that no
// other argument of a plan (a practitioner id, say) can be equal to it.

// maxFactPlans bounds the plan memo; a full memo is cleared.
const maxFactPlans = 10000

// factPlan is a planned fact query with the places where the sentinel
// patient stands in its arguments.
type factPlan struct {
	sq         store.SearchQuery
	whereID    []int // positions in sq.Args holding the sentinel id
	whereHash  []int // positions in sq.Args holding the sentinel's reference hash
	driveID    []int // the same in sq.Drive.Args
	driveHash  []int
	sentinelRH int64
}

type factPlans struct {
	sentinel string
	mu       sync.Mutex
	m        map[string]*factPlan
}

func newFactPlans() *factPlans {
	b := make([]byte, 16)
	rand.Read(b) // never fails (crypto/rand)
	return &factPlans{sentinel: "fact-" + hex.EncodeToString(b), m: map[string]*factPlan{}}
}

// bind returns the plan's query for patient p.
func (fp *factPlan) bind(k search.Keyer, p string) store.SearchQuery {
	sq := fp.sq
	rh := search.RefHash(k, "Patient", p)
	sq.Args = slices.Clone(fp.sq.Args)
	for _, i := range fp.whereID {
		sq.Args[i] = p
	}
	for _, i := range fp.whereHash {
		sq.Args[i] = rh
	}
	if fp.sq.Drive != nil {
		d := *fp.sq.Drive
		d.Args = slices.Clone(fp.sq.Drive.Args)
		for _, i := range fp.driveID {
			d.Args[i] = p
		}
		for _, i := range fp.driveHash {
			d.Args[i] = rh
		}
		sq.Drive = &d
	}
	return sq
}

func positions(args []any, id string, rh int64) (ids, hashes []int) {
	for i, a := range args {
		switch v := a.(type) {
		case string:
			if v == id {
				ids = append(ids, i)
			}
		case int64:
			if v == rh {
				hashes = append(hashes, i)
			}
		}
	}
	return ids, hashes
}

// patientFactQuery is factQuery for a question about one patient p: q
// names the patient as the sentinel wherever it names p (as an id or in a
// reference "Patient/"+sentinel). The plan is memoized per tenant and
// memo, which must name typ, q and limit completely (it is cheaper to
// build than encoding q).
func (r *Loader) patientFactQuery(ctx context.Context, memo, typ string, q url.Values, limit int, p string) (store.SearchQuery, error) {
	fp, k, err := r.memoPlan(ctx, memo, typ, q, limit, true)
	if err != nil {
		return store.SearchQuery{}, err
	}
	return fp.bind(k, p), nil
}

// probeFactQuery is the memoized plan of a question about no patient in
// particular, as conditions that probe a candidate row r (for adding to a
// question that pins its patient): its driving lookup becomes a probe.
// ok is false when the plan has another shape.
func (r *Loader) probeFactQuery(ctx context.Context, memo, typ string, q url.Values) (where []string, args []any, ok bool, err error) {
	fp, _, err := r.memoPlan(ctx, memo, typ, q, 1, false)
	if err != nil || fp.sq.Drive == nil || len(fp.sq.Where) > 0 {
		return nil, nil, false, err
	}
	pq := search.ProbeDriver(fp.sq)
	return pq.Where, pq.Args, true, nil
}

func (r *Loader) memoPlan(ctx context.Context, memo, typ string, q url.Values, limit int, pinned bool) (*factPlan, search.Keyer, error) {
	k, err := r.s.keyer(ctx, r.subj.Tenant)
	if err != nil {
		return nil, nil, err
	}
	key := r.subj.Tenant + "\x00" + memo
	fps := r.s.factPlans
	fps.mu.Lock()
	fp := fps.m[key]
	fps.mu.Unlock()
	if fp == nil {
		if fp, err = r.planFact(ctx, typ, q, limit, k, fps.sentinel, pinned); err != nil {
			return nil, nil, err
		}
		fps.mu.Lock()
		if len(fps.m) >= maxFactPlans {
			clear(fps.m)
		}
		fps.m[key] = fp
		fps.mu.Unlock()
	}
	return fp, k, nil
}

func (r *Loader) planFact(ctx context.Context, typ string, q url.Values, limit int, k search.Keyer, sentinel string, pinned bool) (*factPlan, error) {
	sq, err := r.factQuery(ctx, typ, q, limit)
	if err != nil {
		return nil, err
	}
	fp := &factPlan{sq: *sq, sentinelRH: search.RefHash(k, "Patient", sentinel)}
	fp.whereID, fp.whereHash = positions(sq.Args, sentinel, fp.sentinelRH)
	if sq.Drive != nil {
		fp.driveID, fp.driveHash = positions(sq.Drive.Args, sentinel, fp.sentinelRH)
	}
	// The sentinel must stand only in arguments: a plan that wrote it into
	// the SQL text, or lost it, cannot be bound.
	text := strings.Join(sq.Where, " ")
	if sq.Drive != nil {
		text += sq.Drive.Cond
	}
	if strings.Contains(text, sentinel) || pinned && len(fp.whereID)+len(fp.whereHash)+len(fp.driveID)+len(fp.driveHash) == 0 {
		return nil, fmt.Errorf("access facts: plan of %s?%s does not bind its patient", typ, q.Encode())
	}
	return fp, nil
}
