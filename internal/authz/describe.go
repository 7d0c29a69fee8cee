package authz

import (
	"regexp"
	"strings"
)

// DescribeScopes says what each scope of a scope list lets an app do, in
// plain words, for the consent screen.
func DescribeScopes(scope string) []string {
	var out []string
	for _, f := range strings.Fields(scope) {
		out = append(out, DescribeScope(f))
	}
	return out
}

var plainScopes = map[string]string{
	"openid":           "Know who you are (your user id)",
	"fhirUser":         "Know which person record you are (your Practitioner or Patient record)",
	"profile":          "Know who you are (your profile)",
	"launch":           "Open with the patient (and encounter) you launched it from",
	"launch/patient":   "Open with one patient, the one you choose",
	"launch/encounter": "Open with one encounter",
	"offline_access":   "Keep access after you sign out, until you revoke it",
	"online_access":    "Keep access while you are signed in",
}

var verbs = []struct {
	p    rune
	word string
}{{'c', "create"}, {'r', "read"}, {'u', "update"}, {'d', "delete"}, {'s', "search"}}

var camel = regexp.MustCompile(`([a-z0-9])([A-Z])`)

// DescribeScope says what one scope lets an app do.
func DescribeScope(raw string) string {
	if d := plainScopes[raw]; d != "" {
		return d
	}
	sc, err := ParseScope(raw)
	if err != nil || sc.Context == "" {
		return "Use the permission " + raw
	}
	var ws []string
	for _, v := range verbs {
		if strings.ContainsRune(sc.Perms, v.p) {
			ws = append(ws, v.word)
		}
	}
	what := "all kinds of records"
	if sc.Type != "*" {
		what = strings.ToLower(camel.ReplaceAllString(sc.Type, "$1 $2")) + " records"
	}
	s := strings.ToUpper(joinWords(ws)[:1]) + joinWords(ws)[1:] + " " + what
	if sc.Query != "" {
		s += " (only where " + strings.ReplaceAll(sc.Query, "=", " is ") + ")"
	}
	switch sc.Context {
	case "patient":
		return s + " of the chosen patient"
	case "user":
		return s + " you may see"
	}
	return s + " of every patient (a system permission)"
}

func joinWords(ws []string) string {
	switch len(ws) {
	case 0:
		return ""
	case 1:
		return ws[0]
	}
	return strings.Join(ws[:len(ws)-1], ", ") + " and " + ws[len(ws)-1]
}
