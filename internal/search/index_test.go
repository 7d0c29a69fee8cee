package search

import (
	"bytes"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/search/params"
)

func testKeyer(t testing.TB) Keyer {
	b, err := seal.NewBlinder(bytes.Repeat([]byte{7}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return BlindKeyer{b}
}

// TestPIDsAreUnique: a parameter number identifies one parameter of one
// type, including the variant rows.
func TestPIDsAreUnique(t *testing.T) {
	seen := map[int32]string{}
	for _, p := range params.All() {
		for _, rt := range fhir.ResourceTypes() {
			if _, ok := params.Lookup(rt, p.Code); !ok {
				continue
			}
			for _, v := range []string{"", variantExact, variantIdentifier, variantOfType} {
				name := rt + "." + p.Code + v
				for _, pid := range []int32{PID(rt, p.Code+v), TextPID(PID(rt, p.Code+v))} {
					if other, ok := seen[pid]; ok && other != name {
						t.Fatalf("PID collision: %s and %s", name, other)
					}
					seen[pid] = name
				}
			}
		}
	}
	if len(seen) < 5000 {
		t.Fatalf("only %d parameter numbers", len(seen))
	}
}

func TestIndexSample(t *testing.T) {
	k := testKeyer(t)
	ix := NewIndexer(Options{Now: func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }})
	counts := map[string][2]int{}
	for _, r := range loadSample(t) {
		out, err := ix.Index(r, k)
		if err != nil {
			t.Fatalf("%s: %v", r["resourceType"], err)
		}
		rt := r["resourceType"].(string)
		c := counts[rt]
		c[0]++
		c[1] += len(out.Tokens) + len(out.Dates) + len(out.Numbers) + len(out.Strings)
		counts[rt] = c
	}
	var names []string
	for n := range counts {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		t.Logf("%-28s %4d resources, %.1f rows each", n, counts[n][0], float64(counts[n][1])/float64(counts[n][0]))
	}
	_ = fmt.Sprint
}

func TestAliases(t *testing.T) {
	obs := func(code string) *params.Param {
		p, ok := params.Lookup("Observation", code)
		if !ok {
			t.Fatal(code)
		}
		return p
	}
	codes := func(ps []*params.Param) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Code)
		}
		sort.Strings(out)
		return out
	}
	for code, want := range map[string][]string{
		"combo-code":                {"code", "component-code"},
		"combo-value-quantity":      {"component-value-quantity", "value-quantity"},
		"combo-code-value-quantity": {"code-value-quantity", "component-code-value-quantity"},
		"combo-code-value-concept":  {"code-value-concept", "component-code-value-concept"},
	} {
		a := aliasOf("Observation", obs(code))
		if a == nil || fmt.Sprint(codes(a.Union)) != fmt.Sprint(want) {
			t.Errorf("%s: alias %+v, want union of %v", code, a, want)
		}
	}
	// Composites based on the resource itself are their components'
	// parameters on the same resource; those on a backbone element keep
	// their own rows, since their parts must come from one element.
	for code, want := range map[string][]string{
		"code-value-quantity": {"code", "value-quantity"},
		"code-value-concept":  {"code", "value-concept"},
		"code-value-date":     {"code", "value-date"},
		"code-value-string":   {"code", "value-string"},
	} {
		a := aliasOf("Observation", obs(code))
		if a == nil || len(a.Join) != 2 || a.Join[0].Code != want[0] || a.Join[1].Code != want[1] {
			t.Errorf("%s: alias %+v, want the join of %v", code, a, want)
		}
	}
	for _, code := range []string{"component-code-value-quantity", "component-code-value-concept"} {
		if a := aliasOf("Observation", obs(code)); a != nil {
			t.Errorf("%s must keep its own rows, got alias %+v", code, a)
		}
	}
	if a := aliasOf("Observation", obs("patient")); a == nil || a.Ref.Code != "subject" || a.RefType != "Patient" {
		t.Errorf("patient: alias %+v", a)
	}
	for _, code := range []string{"code", "subject", "value-quantity", "date", "component-code"} {
		if a := aliasOf("Observation", obs(code)); a != nil {
			t.Errorf("%s is not an alias, got %+v", code, a)
		}
	}
}
