package search

import (
	"slices"
	"strings"

	"github.com/wardhealth/ward/internal/store"
)

// The SQL of access restrictions. records decides what a caller may see
// and hands it down as values (patients' reference hashes, label and
// category hashes, types); the functions here write those values as
// conditions over one resources row (its alias a), for a search's Where
// or Options.Restrict, so that every condition on the search tables is
// written in this package.

// NoRows is the condition that no row meets.
const NoRows = `1 = 0`

// Marks is n comma-separated placeholders.
func Marks(n int) string {
	if n == 0 {
		return ""
	}
	b := make([]byte, 0, 3*n)
	for i := range n {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '?')
	}
	return string(b)
}

// Not negates cond.
func Not(cond string) string { return `NOT (` + cond + `)` }

// Paren brackets cond.
func Paren(cond string) string { return `(` + cond + `)` }

// AnyOf is the disjunction of conds.
func AnyOf(conds []string) string { return strings.Join(conds, ` OR `) }

// OfType keeps rows of alias a of one type (its argument, bound first)
// that meet every one of conds.
func OfType(a string, conds ...string) string {
	return `(` + a + `.type = ? AND ` + strings.Join(conds, ` AND `) + `)`
}

// TypesIn keeps rows of alias a of one of n types (bound in order).
func TypesIn(a string, n int) string { return a + `.type IN (` + Marks(n) + `)` }

// InCompartments keeps rows of alias a in the compartments of n patients
// (their reference hashes bound in order): for a Patient (patient true)
// its own reference hash, for any other type a reference row of one of
// its compartment parameters pids. Without pids nothing is kept.
func InCompartments(a string, patient bool, pids []int32, n int) string {
	if n == 0 {
		return NoRows
	}
	if patient {
		return a + `.refh IN (` + Marks(n) + `)`
	}
	if len(pids) == 0 {
		return NoRows
	}
	return a + `.rid IN (SELECT x.rid FROM search_token x WHERE x.p IN (` + PIDListSQL(pids) + `) AND x.h IN (` + Marks(n) + `))`
}

// WithoutLabels keeps rows of alias a (of type typ) that carry none of n
// security labels (their token hashes bound in order).
func WithoutLabels(a, typ string, n int) string {
	return a + `.rid NOT IN (SELECT x.rid FROM search_token x WHERE x.p = ` + PIDSQL(PID(typ, "_security")) + ` AND x.h IN (` + Marks(n) + `))`
}

// InCategories keeps rows of alias a (of type typ) with one of n
// categories (their token hashes bound in order).
func InCategories(a, typ string, n int) string {
	return a + `.rid IN (SELECT x.rid FROM search_token x WHERE x.p = ` + PIDSQL(PID(typ, "category")) + ` AND x.h IN (` + Marks(n) + `))`
}

// DeletedOrKept keeps, of the current rows r of n types (bound first),
// the deleted ones and those kept by where (its arguments bound after):
// a deletion keeps no index rows to restrict on.
func DeletedOrKept(n int, where string) string {
	return `(r.deleted <> 0 AND ` + TypesIn("r", n) + `) OR (` + where + `)`
}

// ReferringTo keeps rows r with a reference row of one of the parameters
// pids whose value is one of n reference hashes (bound in order), for
// _revinclude.
func ReferringTo(pids []int32, n int) string {
	return `r.rid IN (SELECT t.rid FROM search_token t WHERE t.p IN (` + PIDListSQL(pids) + `) AND t.h IN (` + Marks(n) + `))`
}

// InCompartmentOf is the condition "in the compartment of patient id"
// (or, with id empty, of any current patient) over rows r of the given
// types: for each type, a reference row of one of its compartment
// parameters (pidsOf) whose value is the patient's reference hash.
func InCompartmentOf(types []string, pidsOf func(typ string) []int32, id, tenant string, k Keyer) (string, []any) {
	return InCompartmentOn("r", types, pidsOf, id, tenant, k)
}

// InCompartmentOn is InCompartmentOf over the resources row of alias a
// (its subqueries' aliases are a's, suffixed).
func InCompartmentOn(a string, types []string, pidsOf func(typ string) []int32, id, tenant string, k Keyer) (string, []any) {
	var ors []string
	var args []any
	t, pt := a+"t", a+"pt"
	target := func() string {
		if id != "" {
			args = append(args, RefHash(k, "Patient", id))
			return t + ".h = ?"
		}
		args = append(args, tenant)
		return t + ".h IN (SELECT " + pt + ".refh FROM resources " + pt + " WHERE " + pt + ".tenant = ? AND " + pt + ".type = 'Patient' AND " + pt + ".deleted = 0)"
	}
	for _, typ := range types {
		pids := pidsOf(typ)
		var alts []string
		args = append(args, typ)
		if typ == "Patient" {
			if id != "" {
				alts = append(alts, a+".id = ?")
				args = append(args, id)
			} else {
				alts = append(alts, "1 = 1")
			}
		}
		if len(pids) > 0 {
			var b strings.Builder
			b.WriteString(a + ".rid IN (SELECT " + t + ".rid FROM search_token " + t + " WHERE " + t + ".p IN (" + Marks(len(pids)) + ") AND ")
			for _, p := range pids {
				args = append(args, p)
			}
			b.WriteString(target() + ")")
			alts = append(alts, b.String())
		}
		if len(alts) == 0 {
			alts = append(alts, NoRows)
		}
		ors = append(ors, "("+a+".type = ? AND ("+strings.Join(alts, " OR ")+"))")
	}
	return strings.Join(ors, " OR "), args
}

// ReferencedFrom keeps rows of alias a that a current resource s refers
// to through one of the reference parameters refs: s of the tenant (bound
// first), of n types (bound next), meeting cond (over alias s, its
// arguments bound last). It draws the one level of references out of a
// patient compartment that Patient/$everything returns.
func ReferencedFrom(a string, refs []int32, n int, cond string) string {
	if len(refs) == 0 || n == 0 {
		return NoRows
	}
	return a + `.refh IN (SELECT rf.h FROM search_token rf JOIN resources s ON s.rid = rf.rid WHERE rf.p IN (` + PIDListSQL(refs) +
		`) AND s.tenant = ? AND s.deleted = 0 AND ` + TypesIn("s", n) + ` AND (` + cond + `))`
}

// NotResource leaves out the row of alias a that is one resource (its
// type and id bound in that order).
func NotResource(a string) string { return `NOT (` + a + `.type = ? AND ` + a + `.id = ?)` }

// WithinDates keeps rows of alias a with no date row of the parameters
// pids, or one that overlaps [lo, hi] (Unix microseconds, bound in that
// order): a record of care is kept when its care date falls in the range
// or is unknown.
func WithinDates(a string, pids []int32, lo, hi int64) (string, []any) {
	if len(pids) == 0 {
		return "1 = 1", nil
	}
	d, ps := a+"d", PIDListSQL(pids)
	return `((SELECT 1 FROM search_date ` + d + ` WHERE ` + d + `.rid = ` + a + `.rid AND ` + d + `.p IN (` + ps + `) AND ` + d + `.k = 0 LIMIT 1) IS NULL OR ` +
		`(SELECT 1 FROM search_date ` + d + ` WHERE ` + d + `.rid = ` + a + `.rid AND ` + d + `.p IN (` + ps + `) AND ` + d + `.k = 0 AND ` + d + `.hi >= ? AND ` + d + `.lo <= ? LIMIT 1) IS NOT NULL)`, []any{lo, hi}
}

// ProbeDriver turns q's driving index lookup into a probe of each
// candidate row r, for adding to a question whose own conditions already
// pin a handful of rows.
func ProbeDriver(q store.SearchQuery) store.SearchQuery {
	d := q.Drive
	if d == nil {
		return q
	}
	q.Drive = nil
	q.Where = append([]string{`(SELECT 1 FROM ` + d.Table + ` ` + d.Alias + ` WHERE ` + d.Alias + `.rid = r.rid AND (` + d.Cond + `) LIMIT 1) IS NOT NULL`}, q.Where...)
	q.Args = append(slices.Clone(d.Args), q.Args...)
	return q
}
