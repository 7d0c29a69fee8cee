package query

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

func TestParseConfiguredLimits(t *testing.T) {
	o := Options{MaxParams: 4, MaxValues: 3}
	cases := []struct {
		name  string
		rt, q string
		diag  string // "": accepted
	}{
		{"params at the bound", "Patient", "given=a&family=b&gender=male&birthdate=2000", ""},
		{"params over the bound", "Patient", "given=a&family=b&gender=male&birthdate=2000&name=c", "too many search parameters (at most 4"},
		{"repeats count", "Patient", "given=a&given=b&given=c&given=d&given=e", SettingParams},
		{"a chain hop counts once more", "Observation", "subject:Patient.name=a&status=final&code=x", ""},
		{"chain hops add up", "Observation", "subject:Patient.general-practitioner:Practitioner.name=a&status=final&code=x", SettingParams},
		{"_has hops add up", "Patient", "_has:Observation:subject:code=a&_has:Observation:subject:status=final&gender=male", SettingParams},
		{"values at the bound", "Patient", "gender=male,female,other", ""},
		{"values over the bound", "Patient", "gender=male,female,other,unknown", "too many values (at most 3; " + SettingValues},
		{"_type values", "", "_type=Patient,Observation,Condition,Encounter", SettingValues},
		{"_elements values", "Patient", "_elements=id,name,gender,birthDate", SettingValues},
		{"_sort values", "Patient", "_sort=name,gender,birthdate,_id", SettingValues},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q, err := url.ParseQuery(c.q)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(c.rt, q, o)
			if c.diag == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var qe *Error
			if !errors.As(err, &qe) || !strings.Contains(qe.Error(), c.diag) {
				t.Fatalf("got %v, want an error naming %q", err, c.diag)
			}
		})
	}
}

// _count=0 is a valid count (the total alone), not the default.
func TestParseCountZero(t *testing.T) {
	q, err := Parse("Patient", url.Values{"_count": {"0"}}, Options{})
	if err != nil || q.Count != 0 {
		t.Fatalf("got %v, count %d", err, q.Count)
	}
}
