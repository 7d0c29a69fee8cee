package sqlstore

import "testing"

// TestNewRefusesCurrentBodiesItCannotServe: a copy of the current body is
// read only by the one-statement page; a dialect asking for it without
// that page would keep a copy nobody reads.
func TestNewRefusesCurrentBodiesItCannotServe(t *testing.T) {
	for _, d := range []Dialect{
		{Name: "no page with bodies", CurrentBodies: true},
	} {
		if db, err := New(d, nil, nil, Options{}); err == nil {
			db.Close()
			t.Errorf("%s: New accepted CurrentBodies", d.Name)
		}
	}
}
