package query

import (
	"errors"
	"net/url"
	"testing"
)

// fuzzTypes keeps the fuzzer on types with interesting parameters rather
// than on resource type names, which Parse rejects at once.
var fuzzTypes = []string{"", "Patient", "Observation", "Condition", "Encounter", "MedicationRequest", "Group", "ValueSet", "Location", "DocumentReference"}

func FuzzParse(f *testing.F) {
	f.Add(uint8(1), []byte("given=eve&birthdate=ge2013-01-14&_sort=-birthdate"), false)
	f.Fuzz(func(t *testing.T, which uint8, data []byte, strict bool) {
		rt := fuzzTypes[int(which)%len(fuzzTypes)]
		q, _ := url.ParseQuery(string(data)) // a partial parse is still a query
		got, err := Parse(rt, q, Options{Strict: strict})
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Msg == "" {
				t.Fatalf("error %T %v is not a *Error with a message", err, err)
			}
			return
		}
		if strict && len(got.Ignored) > 0 {
			t.Fatalf("strict parse ignored %v", got.Ignored)
		}
		q2, err := url.ParseQuery(got.Self)
		if err != nil {
			t.Fatalf("Self %q does not parse: %v", got.Self, err)
		}
		again, err := Parse(rt, q2, Options{Strict: strict})
		if err != nil {
			t.Fatalf("Self %q does not re-parse: %v", got.Self, err)
		}
		if again.Self != got.Self {
			t.Fatalf("Self not idempotent:\n%s\n%s", got.Self, again.Self)
		}
		if len(again.Clauses) != len(got.Clauses) || again.Count != got.Count || len(again.Sort) != len(got.Sort) ||
			len(again.Include) != len(got.Include) || len(again.RevInclude) != len(got.RevInclude) {
			t.Fatalf("re-parsing Self %q changed the query", got.Self)
		}
	})
}
