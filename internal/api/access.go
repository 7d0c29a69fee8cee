package api

import (
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// The request headers of issue #6. They are read here, at the edge, and
// handed down on the Subject as values; nothing below reads HTTP.
const (
	headerBreakGlass = "X-Break-Glass"
	headerPurpose    = "X-Purpose-Of-Use"
	maxBreakGlass    = 256
)

// accessHeaders applies X-Purpose-Of-Use and X-Break-Glass to subj. The
// break-glass reason may be free text (it may name the patient): it is
// never echoed in an error, a log or the ledger (records keeps a code or a
// keyed hash).
func accessHeaders(r *http.Request, subj authz.Subject) (authz.Subject, error) {
	if vs := r.Header.Values(headerPurpose); len(vs) > 0 {
		p := strings.TrimSpace(vs[0])
		if len(vs) > 1 || !authz.KnownPurpose(p) {
			return subj, problem.New(problem.ErrInvalid, "value",
				headerPurpose+" must be one v3 PurposeOfUse code Ward accepts (TREAT, ETREAT, HOPERAT, HPAYMT, HRESCH, PATRQT, PUBHLTH, BTG, HLEGAL, COVERAGE, FAMRQT, SYSADMIN)")
		}
		if subj.Purpose != "" && subj.Purpose != p {
			return subj, problem.New(problem.ErrForbidden, "forbidden", headerPurpose+" differs from the purpose of use the access token was granted for")
		}
		subj.Purpose = p
	}
	if vs := r.Header.Values(headerBreakGlass); len(vs) > 0 {
		reason := strings.TrimSpace(vs[0])
		if len(vs) > 1 || reason == "" || len(reason) > maxBreakGlass || !printable(reason) {
			return subj, problem.New(problem.ErrInvalid, "value",
				headerBreakGlass+" must be one reason of 1 to 256 printable characters")
		}
		subj.BreakGlass = reason
	}
	return subj, nil
}

func printable(s string) bool {
	for _, c := range s {
		if c < ' ' || c == 0x7f || c == '\uFFFD' {
			return false
		}
	}
	return true
}
