package audit

import (
	"context"
	"errors"
	"testing"

	"github.com/wardhealth/ward/internal/problem"
)

type change struct{ recs []*Record }

func (c *change) AddAudit(recs ...*Record) { c.recs = append(c.recs, recs...) }

type committer struct {
	err  error
	got  *change
	live bool // the commit's context was not cancelled
}

func (c *committer) Commit(ctx context.Context, ch *change) error {
	c.got, c.live = ch, ctx.Err() == nil
	return c.err
}

var errKept = errors.New("kept")

func TestRecorderFailsClosed(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name            string
		err             error
		wantUnavailable bool
		wantKept        bool
	}{
		{"ok", nil, false, false},
		{"ledger down", errors.New("disk full"), true, false},
		{"precondition failed, records kept", errKept, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &committer{err: tc.err}
			r := NewRecorder[*change](c, func() *change { return &change{} }, errKept, 0)
			err := r.Record(cancelled, &Record{Action: "read"}, &Record{Action: "read"})
			if got := errors.Is(err, problem.ErrUnavailable); got != tc.wantUnavailable {
				t.Errorf("unavailable = %v, want %v (%v)", got, tc.wantUnavailable, err)
			}
			if got := errors.Is(err, errKept); got != tc.wantKept {
				t.Errorf("kept = %v, want %v (%v)", got, tc.wantKept, err)
			}
			if tc.err == nil && err != nil {
				t.Errorf("err = %v", err)
			}
			if len(c.got.recs) != 2 || !c.live {
				t.Errorf("committed %d records, live context %v; want 2, true", len(c.got.recs), c.live)
			}
		})
	}
}
