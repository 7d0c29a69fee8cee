package store

import (
	"testing"

	"github.com/wardhealth/ward/internal/audit"
)

func TestRecordsOnly(t *testing.T) {
	recs := []*audit.Record{{Action: "read"}}
	cases := []struct {
		u    Unit
		want bool
	}{
		{Unit{}, true},
		{Unit{Audit: recs}, true},
		{Unit{Writes: []Write{{ID: "p"}}, Audit: recs}, false},
		{Unit{Reindex: []Reindex{{ID: "p"}}}, false},
		{Unit{Guards: []Guard{{}}}, false},
		{Unit{Parts: []Part{UseJTI{JTI: "j"}}, Audit: recs}, false},
	}
	for i, c := range cases {
		if got := c.u.RecordsOnly(); got != c.want {
			t.Errorf("case %d: RecordsOnly = %v, want %v", i, got, c.want)
		}
	}
}
