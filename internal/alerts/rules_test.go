package alerts

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRefuses(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"unknown field", `{"rules":[{"id":"a","kind":"break-glass","secret":"Smith"}]}`, `unknown field "secret"`},
		{"unknown kind", `{"rules":[{"id":"a","kind":"tea-time"}]}`, "kind must be one of"},
		{"bad id", `{"rules":[{"id":"Smith John","kind":"break-glass"}]}`, "rule 1: id must be"},
		{"duplicate id", `{"rules":[{"id":"a","kind":"break-glass"},{"id":"a","kind":"bulk-export"}]}`, "rule 2: id a used twice"},
		{"no threshold", `{"rules":[{"id":"a","kind":"refusals"}]}`, "threshold must be"},
		{"foreign threshold", `{"rules":[{"id":"a","kind":"break-glass","threshold":3}]}`, "threshold is not a field"},
		{"bad hours", `{"rules":[{"id":"a","kind":"outside-hours","start":"7","end":"19:00"}]}`, "start must be a time of day"},
		{"bad zone", `{"rules":[{"id":"a","kind":"outside-hours","start":"07:00","end":"19:00","timezone":"Mars/Olympus"}]}`, "timezone is not a known"},
		{"no labels", `{"rules":[{"id":"a","kind":"flagged-patient"}]}`, "labels must name"},
		{"bad window", `{"rules":[{"id":"a","kind":"break-glass","window":"-1h"}]}`, "window must be a positive duration"},
		{"syntax", `{"rules":[`, "invalid JSON"},
		{"trailing", `{"rules":[]} {}`, "trailing data"},
		{"actions on refusals", `{"rules":[{"id":"a","kind":"refusals","threshold":2,"actions":["read"]}]}`, "actions is not a field"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse = %v, want an error containing %q", err, c.want)
			}
			for _, secret := range []string{"Smith", "Mars"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error echoes the input: %v", err)
				}
			}
		})
	}
}

func TestParseAccepts(t *testing.T) {
	c, err := Parse([]byte(`{"rules":[{"id":"night","kind":"outside-hours","start":"22:00","end":"06:00","timezone":"Europe/Paris"},
		{"id":"reads","kind":"reads-per-hour","threshold":3,"window":"30m","actions":["read"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Rules) != 2 || c.Rules[1].Threshold != 3 || c.Rules[0].start != 22*60 {
		t.Errorf("parsed %+v", c.Rules)
	}
	if got := len(Default().Rules); got != 9 {
		t.Errorf("%d default rules, want 9", got)
	}
}

// FuzzParse: no input panics Parse; an accepted configuration parses again
// after a round trip through JSON.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/rules/*.json")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(defaultRules)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			return
		}
		if _, err := Parse(mustJSON(t, c)); err != nil {
			t.Fatalf("round trip of an accepted config fails: %v", err)
		}
	})
}
