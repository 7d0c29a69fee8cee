package sqlstore

import "testing"

// TestNewRefusesCurrentBodiesItCannotServe: a copy of the current body is
// read only by the one-statement page and written only by multi-row
// upserts; a dialect asking for it without them would keep a copy nobody
// reads, or fail its first write.
func TestNewRefusesCurrentBodiesItCannotServe(t *testing.T) {
	for _, d := range []Dialect{
		{Name: "no page with bodies", CurrentBodies: true},
		{Name: "row at a time", CurrentBodies: true, PageWithBodies: true, RowAtATime: true},
	} {
		if db, err := New(d, nil, nil, Options{}); err == nil {
			db.Close()
			t.Errorf("%s: New accepted CurrentBodies", d.Name)
		}
	}
}
