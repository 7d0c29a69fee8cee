package search

import (
	"errors"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/query"
)

// TestCapabilityMatchesPlanner: every parameter the CapabilityStatement
// lists is one the planner answers (here with :missing, which every type
// takes), and what it leaves out is refused.
func TestCapabilityMatchesPlanner(t *testing.T) {
	k := testKeyer(t)
	caps := Capability(Options{})
	n := 0
	for rt, ps := range caps {
		for _, c := range ps {
			v := url.Values{c.Name + ":missing": {"false"}}
			if c.Name == "_list" { // takes no modifier
				v = url.Values{"_list": {"x"}}
			}
			q, err := query.Parse(rt, v, query.Options{Strict: true, Supported: Supported})
			if err != nil {
				t.Errorf("%s.%s: parse: %v", rt, c.Name, err)
				continue
			}
			if _, err := Plan(q, "t", k, Options{}); err != nil {
				t.Errorf("%s.%s: plan: %v", rt, c.Name, err)
			}
			n++
		}
	}
	if n < 1200 {
		t.Errorf("only %d parameters listed", n)
	}
	has := func(rt, code string) bool {
		for _, c := range caps[rt] {
			if c.Name == code {
				return true
			}
		}
		return false
	}
	for _, want := range [][2]string{{"Patient", "family"}, {"Patient", "birthdate"}, {"Observation", "code"}, {"Observation", "combo-code"}, {"Observation", "patient"}, {"Observation", "code-value-quantity"}, {"Patient", "_id"}, {"Patient", "_lastUpdated"}} {
		if !has(want[0], want[1]) {
			t.Errorf("%s.%s not listed", want[0], want[1])
		}
	}
	for _, not := range [][2]string{{"Patient", "_text"}, {"Patient", "_content"}, {"MolecularSequence", "chromosome-variant-coordinate"}} {
		if has(not[0], not[1]) {
			t.Errorf("%s.%s listed but not searchable", not[0], not[1])
		}
	}
	p, _ := params.Lookup("Patient", "family")
	if !Blinded("Patient", p) {
		t.Error("Patient.family is not blinded")
	}
}

func BenchmarkIndexObservation(b *testing.B) {
	r := richest(b, "Observation", "valueQuantity")
	ix := NewIndexer(Options{})
	k := testKeyer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ix.Index(r, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIndexPatient(b *testing.B) {
	r := richest(b, "Patient", "")
	ix := NewIndexer(Options{})
	k := testKeyer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ix.Index(r, k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPlanObservationQuery(b *testing.B) {
	v, _ := url.ParseQuery("patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2020-01-01&_sort=-date&_count=10")
	k := testKeyer(b)
	b.ReportAllocs()
	for b.Loop() {
		q, err := query.Parse("Observation", v, query.Options{Supported: Supported})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Plan(q, "t", k, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOneClauseDrives: of several clauses, the most selective lists the
// candidate rids and every other one probes a candidate by rid, so that no
// database materializes a broad condition (a date range, a common code)
// in full.
func TestOneClauseDrives(t *testing.T) {
	k := testKeyer(t)
	cases := []struct {
		rt, q string
		drive string // the parameter whose clause drives; "" for none
	}{
		{"Observation", "patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2020-01-01", "patient"},
		{"Observation", "date=ge2020-01-01&code=http://loinc.org|8867-4&subject=Patient/p1", "subject"},
		{"Observation", "date=ge2020-01-01&code=http://loinc.org|8867-4", "code"},
		{"Observation", "value-quantity=gt5&date=ge2020-01-01", "date"},
		{"Patient", "birthdate=1970&family=ka&identifier=http://x|1", "identifier"},
		{"Patient", "family=ka&gender=female", "gender"},
		{"Observation", "code:missing=false&date=ge2020", "date"},
		{"Observation", "code:not=x", ""},
		{"Observation", "code=x", "code"},
	}
	for _, c := range cases {
		v, err := url.ParseQuery(c.q)
		if err != nil {
			t.Fatal(err)
		}
		q, err := query.Parse(c.rt, v, query.Options{Supported: Supported})
		if err != nil {
			t.Fatalf("%s?%s: %v", c.rt, c.q, err)
		}
		sq, err := Plan(q, "t", k, Options{})
		if err != nil {
			t.Fatalf("%s?%s: %v", c.rt, c.q, err)
		}
		// The driver is either handed over as the store's Drive (one
		// index lookup) or stays a condition that lists rids.
		clauses := q.Clauses
		if sq.Drive != nil {
			i := slices.IndexFunc(clauses, func(cl query.Clause) bool { return cl.Param.Code == c.drive && cl.Missing == nil })
			if i < 0 {
				t.Fatalf("%s?%s: a Drive, but %q should not drive", c.rt, c.q, c.drive)
			}
			if !regexp.MustCompile(`^`+sq.Drive.Alias+`\.p = \d+ AND `).MatchString(sq.Drive.Cond) || strings.Count(sq.Drive.Cond, "?") != len(sq.Drive.Args) {
				t.Errorf("%s?%s: drive %+v", c.rt, c.q, sq.Drive)
			}
			clauses = slices.Delete(slices.Clone(clauses), i, i+1)
		}
		if len(sq.Where) != len(clauses) {
			t.Fatalf("%s?%s: %d conditions for %d clauses", c.rt, c.q, len(sq.Where), len(clauses))
		}
		for i, w := range sq.Where {
			drives := sq.Drive == nil && clauses[i].Param.Code == c.drive && clauses[i].Missing == nil
			if lists := strings.Contains(w, "r.rid IN (SELECT"); lists != drives {
				t.Errorf("%s?%s: %s lists rids = %v, want %v: %s", c.rt, c.q, clauses[i].Param.Code, lists, drives, w)
			}
		}
		if c.drive != "" && sq.Drive == nil && !slices.ContainsFunc(sq.Where, func(w string) bool { return strings.Contains(w, "r.rid IN (SELECT") }) {
			t.Errorf("%s?%s: nothing drives", c.rt, c.q)
		}
	}
}

// TestPlanRestrictsJoins: every chain hop and _has subquery asks
// Options.Restrict for its row's condition, with the row's type and
// alias, and the condition's arguments sit where its placeholders are.
func TestPlanRestrictsJoins(t *testing.T) {
	k := testKeyer(t)
	for _, c := range []struct {
		rt, query string
		types     []string
	}{
		{"Observation", "subject:Patient.general-practitioner:Practitioner.name=ab", []string{"Patient", "Practitioner"}},
		{"Patient", "_has:Observation:subject:_has:Provenance:target:agent=Practitioner/x", []string{"Observation", "Provenance"}},
		{"Observation", "code=1234-5&subject:Patient.gender=female", []string{"Patient"}},
	} {
		vals, err := url.ParseQuery(c.query)
		if err != nil {
			t.Fatal(err)
		}
		q, err := query.Parse(c.rt, vals, query.Options{Strict: true, Supported: Supported})
		if err != nil {
			t.Fatalf("%s?%s: %v", c.rt, c.query, err)
		}
		var asked []string
		o := Options{Restrict: func(typ, alias string) (string, []any, error) {
			asked = append(asked, typ)
			return alias + `.id <> ?`, []any{"mark-" + typ + "-" + alias}, nil
		}}
		sq, err := Plan(q, "t", k, o)
		if err != nil {
			t.Fatalf("%s?%s: %v", c.rt, c.query, err)
		}
		if strings.Join(asked, ",") != strings.Join(c.types, ",") {
			t.Errorf("%s?%s: restricted %v, want %v", c.rt, c.query, asked, c.types)
		}
		sql := strings.Join(sq.Where, " AND ")
		if n := strings.Count(sql, "?"); n != len(sq.Args) {
			t.Fatalf("%s?%s: %d placeholders, %d arguments", c.rt, c.query, n, len(sq.Args))
		}
		for i, a := range sq.Args {
			s, ok := a.(string)
			if !ok || !strings.HasPrefix(s, "mark-") {
				continue
			}
			alias := s[strings.LastIndex(s, "-")+1:]
			at := strings.Index(sql, alias+`.id <> ?`)
			if at < 0 {
				t.Errorf("%s?%s: no condition on %s", c.rt, c.query, alias)
				continue
			}
			if n := strings.Count(sql[:at], "?"); n != i {
				t.Errorf("%s?%s: the argument of %s's condition is #%d, its placeholder #%d", c.rt, c.query, alias, i, n)
			}
		}
	}
	// The hook's errors end the planning.
	errBoom := errors.New("boom")
	q, _ := query.Parse("Observation", url.Values{"subject:Patient.gender": {"female"}}, query.Options{})
	if _, err := Plan(q, "t", k, Options{Restrict: func(string, string) (string, []any, error) { return "", nil, errBoom }}); !errors.Is(err, errBoom) {
		t.Errorf("hook error: %v", err)
	}
}

// TestParameterNumbersAreLiterals: a plan made without the bound values
// (PostgreSQL's cached generic plans) must still see which parameter a
// condition reads, or it cannot use a partial index on some parameters
// nor the statistics of p. So no
// parameter number is ever a placeholder, and with ProbeByRID no probe
// names p where a value index could seek it.
func TestParameterNumbersAreLiterals(t *testing.T) {
	k := testKeyer(t)
	for _, c := range []struct{ rt, q string }{
		{"Observation", "patient=Patient/p1&code=http://loinc.org|8867-4&date=ge2020-01-01&_sort=-date&_count=10"},
		{"Observation", "code=http://loinc.org|8867-4&_sort=date,value-quantity"},
		{"Patient", "family=she"},
		{"Patient", "family=she&gender=female&birthdate=1970&identifier:missing=false&name:exact=x&_sort=-_lastUpdated"},
		{"Observation", "subject:Patient.identifier=http://x|1&code:not=x&status=final"},
		{"Patient", "_has:Observation:subject:code=1234-5"},
		{"Observation", "code-value-quantity=http://loinc.org|8867-4$gt5&combo-code-value-quantity:missing=true"},
	} {
		v, err := url.ParseQuery(c.q)
		if err != nil {
			t.Fatal(err)
		}
		q, err := query.Parse(c.rt, v, query.Options{Supported: Supported})
		if err != nil {
			t.Fatalf("%s?%s: %v", c.rt, c.q, err)
		}
		for _, byRID := range []bool{false, true} {
			sq, err := Plan(q, "t", k, Options{ProbeByRID: byRID})
			if err != nil {
				t.Fatalf("%s?%s: %v", c.rt, c.q, err)
			}
			sql := strings.Join(sq.Where, " AND ")
			if sq.Drive != nil {
				sql += " AND " + sq.Drive.Cond
			}
			for _, o := range sq.Order {
				sql += " ORDER " + o.Expr
			}
			if strings.Contains(sql, ".p = ?") || strings.Contains(sql, ".p IN (?") {
				t.Errorf("%s?%s: a parameter number is bound: %s", c.rt, c.q, sql)
			}
			// A probe (a scalar subquery per candidate: a clause that does
			// not drive, a sort key) is a correlated lookup by rid.
			probes := regexp.MustCompile(`(EXISTS )?(\(SELECT 1|\(SELECT M[AI][XN]\(x\d+\.\w+\)) FROM \w+ x\d+ WHERE x\d+\.rid = (?:r|x\d+)\.rid AND x\d+\.p( \+ 0)? = \d+`).FindAllStringSubmatch(sql, -1)
			if single := !strings.Contains(c.q, "&") && !strings.Contains(c.q, "_sort"); len(probes) == 0 && !single {
				t.Errorf("%s?%s: no probe found in %s", c.rt, c.q, sql)
			}
			for _, m := range probes {
				if m[1] != "" {
					continue // :missing: EXISTS, not a probe of a value
				}
				if (m[3] != "") != byRID {
					t.Errorf("%s?%s (ProbeByRID %v): probe %q", c.rt, c.q, byRID, m[0])
				}
			}
		}
	}
}

// TestIDDrives: a positive _id clause drives the search, however common
// the other clauses' values (a Subscription batch's match,
// records.MatchingIDs): the ids are listed as rids from the resources
// key (or, with IDsByKey, left as r.id IN for the database to seek by
// its key) and every other clause probes a candidate by rid.
func TestIDDrives(t *testing.T) {
	k := testKeyer(t)
	for _, byKey := range []bool{false, true} {
		q, err := query.Parse("Observation", url.Values{"code": {"http://loinc.org|8867-4"}, "status": {"final"}, "_id": {"a,b"}}, query.Options{Supported: Supported})
		if err != nil {
			t.Fatal(err)
		}
		sq, err := Plan(q, "t", k, Options{IDsByKey: byKey})
		if err != nil {
			t.Fatal(err)
		}
		if sq.Drive != nil || len(sq.Where) != 3 {
			t.Fatalf("byKey %v: drive %+v, where %q", byKey, sq.Drive, sq.Where)
		}
		want := regexp.MustCompile(`^r\.rid IN \(SELECT (x\d+)\.rid FROM resources x\d+ WHERE x\d+\.tenant = \? AND x\d+\.type = \? AND x\d+\.id IN \(\?, \?\)\)$`)
		if byKey {
			want = regexp.MustCompile(`^r\.id IN \(\?, \?\)$`)
		}
		ids := 0
		for _, w := range sq.Where {
			switch {
			case want.MatchString(w):
				ids++
			case !strings.Contains(w, "WHERE x") || !strings.Contains(w, ".rid = r.rid AND ") || !strings.Contains(w, "LIMIT 1) IS NOT NULL"):
				t.Errorf("byKey %v: %s is neither the ids nor a probe", byKey, w)
			}
		}
		if ids != 1 {
			t.Errorf("byKey %v: the ids are not written as the driver: %q", byKey, sq.Where)
		}
		if strings.Count(strings.Join(sq.Where, ""), "?") != len(sq.Args) {
			t.Errorf("byKey %v: %d placeholders, %d args", byKey, strings.Count(strings.Join(sq.Where, ""), "?"), len(sq.Args))
		}
	}
}
