package app_test

import (
	"net/url"
	"sort"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// The search_prefix layout (issue #24) answers every search the prefix
// rows of the old layout did: a starts-with search of every length from 2
// to past 32 characters, on a name's and an address's parts separately
// and together, :exact as written, phone and e-mail as kinds of telecom,
// and a birth date at each precision; and it tells apart values that
// share the anchor prefix a row is found by.
func TestBlindedPrefixSearches(t *testing.T) {
	long := "Kalomirendarvelthosaniabrequinzofalin" // 37 characters
	for _, backend := range apptest.Backends {
		t.Run(string(backend), func(t *testing.T) {
			w := apptest.Start(t, backend)
			tok := w.Tokens[authz.RoleAdmin]
			a := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Velasquez","given":["Lulu","Ostrimlu"]},{"family":"`+long+`"}],
				"telecom":[{"system":"phone","value":"+1-633-555-0140"},{"system":"email","value":"lulu@example.com"}],
				"birthDate":"1971-08-19","address":[{"line":["4971 Kacor Street"],"city":"Badarton","state":"WA","postalCode":"83606"}]}`)
			b := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"Velsa","given":["Luna"]}],
				"telecom":[{"system":"email","value":"+1-633-555-0140"}],
				"birthDate":"1971-09-19","address":[{"city":"Waban","state":"BA","postalCode":"83607"}]}`)
			ids := func(q string) string {
				t.Helper()
				r := w.Do(t, "GET", "/fhir/Patient?"+q, tok, nil)
				if r.Status != 200 {
					t.Fatalf("%s: %d %.300s", q, r.Status, r.Body)
				}
				var out []string
				entries, _ := r.JSON(t)["entry"].([]any)
				for _, e := range entries {
					res := e.(map[string]any)["resource"].(map[string]any)
					switch res["id"] {
					case a:
						out = append(out, "a")
					case b:
						out = append(out, "b")
					}
				}
				sort.Strings(out)
				return strings.Join(out, ",")
			}
			cases := []struct{ q, want string }{
				{"family=ve", "a,b"},
				{"family=vel", "a,b"},
				{"family=vela", "a"},
				{"family=vels", "b"},
				{"family=velas", "a"},
				{"family=velsa", "b"},
				{"family=velasq", "a"},
				{"family=velasquez", "a"},
				{"family=velasqueza", ""},
				{"family=velasquex", ""},
				{"family=" + long[:31], "a"},
				{"family=" + long[:32], "a"},
				{"family=" + long, "a"}, // past 32: matched on the first 32
				{"family=lulu", ""},     // a given name, not a family name
				{"given=lulu", "a"},
				{"given=lu", "a,b"},
				{"given=lun", "b"},
				{"given=ostrimlu", "a"},
				{"given=velsa", ""},
				{"name=velsa", "b"},
				{"name=lun", "b"},
				{"name=ostr", "a"},
				{"phonetic=ostr", "a"},
				{"family:exact=Velsa", "b"},
				{"family:exact=velsa", ""},
				{"given:exact=Lulu", "a"},
				{"name:exact=Luna", "b"},
				{"address=kacor", ""}, // a word inside: starts-with only
				{"address=4971+kac", "a"},
				{"address=badar", "a"},
				{"address=wa", "a,b"}, // WA, and Waban
				{"address-city=wa", "b"},
				{"address-state=wa", "a"},
				{"address-postalcode=83606", "a"},
				{"address-postalcode=8360", "a,b"},
				{"phone=" + url.QueryEscape("+1-633-555-0140"), "a"},
				{"email=" + url.QueryEscape("+1-633-555-0140"), "b"},
				{"telecom=" + url.QueryEscape("+1-633-555-0140"), "a,b"},
				{"telecom=" + url.QueryEscape("|+1-633-555-0140"), "a,b"},
				{"email=lulu@example.com", "a"},
				{"phone:missing=true", "b"},
				{"family:missing=false", "a,b"},
				{"birthdate=1971", "a,b"},
				{"birthdate=1971-08", "a"},
				{"birthdate=1971-09-19", "b"},
				{"birthdate=1971-08-20", ""},
				{"birthdate=1972", ""},
			}
			for _, c := range cases {
				if got := ids(c.q); got != c.want {
					t.Errorf("%s: got %q, want %q", c.q, got, c.want)
				}
			}
		})
	}
}
