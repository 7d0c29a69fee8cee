package search

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/search/value"
	"github.com/wardhealth/ward/internal/store"
)

// Plan translates a parsed query into the store's SearchQuery for one
// tenant: each clause becomes a condition on the resource row r, an
// indexed subquery on the rid (or, for chains and _has, a join through the
// reference hash). Every condition that can touch another resource row
// repeats the tenant, so no join leaves the tenant even in theory, and
// carries o.Restrict's condition for that row, so a chain or _has matches
// only through resources the caller may see.
//
// Errors are *query.Error (400): a search the index cannot answer, such as
// :contains on a blinded name, says so and why.
func Plan(q *query.Query, tenant string, k Keyer, o Options) (*store.SearchQuery, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	b := &builder{k: k, tenant: tenant, opts: o}
	sq := &store.SearchQuery{Tenant: tenant, Limit: q.Count}
	if q.Type != "" {
		sq.Types = []string{q.Type}
	} else {
		sq.Types = q.Types
	}
	rt := q.Type
	if rt == "" {
		// A system-level search: a common parameter's index rows carry
		// each type's own parameter number, so a clause matches any of
		// the searched types' numbers (sysPID).
		b.sysTypes = q.Types
		if len(b.sysTypes) == 0 {
			b.sysTypes = fhir.ResourceTypes()
		}
		b.sysPIDs = map[int32][]int32{}
	}
	drive := driver(rt, q.Clauses)
	for i, c := range q.Clauses {
		// One clause drives (its rows are listed by index); the others
		// probe each candidate by rid. Without this SQLite materializes
		// every IN list in full: a date range over a million rows to
		// intersect with a patient's ten.
		b.probe = drive >= 0 && i != drive
		b.driving = i == drive
		start := len(b.args)
		b.listed, b.listing = nil, false
		w, err := b.clause(rt, "r", c)
		b.probe, b.driving = false, false
		if err != nil {
			return nil, err
		}
		if l := b.listed; i == drive && l != nil && (w == l.sql || w == "("+l.sql+")") && strings.Count(l.cond, "?") == len(b.args)-start {
			// The driver is one index lookup: hand it to the store as
			// such, so that it can stream it.
			sq.Drive = &store.Drive{Table: l.table, Alias: l.alias, Cond: l.cond, Args: slices.Clone(b.args[start:])}
			b.args = b.args[:start]
			continue
		}
		sq.Where = append(sq.Where, w)
	}
	sq.Args = b.args
	for _, s := range q.Sort {
		o, err := b.order(rt, s)
		if err != nil {
			return nil, err
		}
		sq.Order = append(sq.Order, o)
	}
	return sq, nil
}

type builder struct {
	k      Keyer
	tenant string
	opts   Options
	n      int
	args   []any
	// probe makes in() test one candidate row's rid (a correlated
	// EXISTS) instead of listing every matching rid.
	probe bool
	// driving is set while the driving clause is translated.
	driving bool
	// listed is the last index lookup in() listed for the row r, or nil
	// when the clause made more than one.
	listed  *listing
	listing bool
	// sysTypes are the types of a system-level search and sysPIDs the
	// parameter numbers, one per type, that each system-level number
	// stands for (see pidEq).
	sysTypes []string
	sysPIDs  map[int32][]int32
}

// pidEq is the condition "column col is parameter pid": for a parameter
// of a system-level search, any of the searched types' numbers for it.
func (b *builder) pidEq(col string, pid int32) string {
	if ps, ok := b.sysPIDs[pid]; ok {
		return col + ` IN (` + b.pidList(ps) + `)`
	}
	return col + ` = ` + pidSQL(pid)
}

// listing is one rid list of an index table over the resource row r.
type listing struct {
	sql, table, alias, cond string
}

// Rank of a clause as the driver of a search: lower is more selective.
const (
	// rankID: _id names at most a hundred resources, each found by the
	// resources table's (tenant, type, id) key, so it drives whatever
	// else the search has. A Subscription's batch (records.MatchingIDs)
	// is its criteria plus the batch's ids: driven by the criteria's own
	// rows it read every resource with that code, a cost that grew with
	// the database; driven by _id it reads the batch.
	rankID        = iota
	rankReference // one resource's references: a handful of rows
	rankToken     // a code, identifier or status
	rankString    // a name prefix
	rankRange     // dates, numbers, quantities, composites
	rankJoin      // chains and _has keep their own join
	rankNever     // :missing, :not, _lastUpdated have no row list
)

// driver picks the clause whose index rows list the candidates: the most
// selective by parameter type, the first among equals; -1 if none can.
func driver(rt string, cs []query.Clause) int {
	best, bestRank := -1, rankJoin
	for i, c := range cs {
		if r := clauseRank(rt, c); r < bestRank {
			best, bestRank = i, r
		}
	}
	return best
}

func clauseRank(rt string, c query.Clause) int {
	switch {
	case c.Has != nil || len(c.Chain) > 0:
		return rankJoin
	case c.Missing != nil || c.Modifier == "not" || c.Param == nil:
		return rankNever
	}
	p := c.Param
	if al := aliasOf(rt, p); al != nil {
		if al.Ref != nil {
			return rankReference
		}
		return rankString
	}
	switch p.Code {
	case "_id":
		return rankID
	case "_lastUpdated":
		return rankNever
	}
	switch p.Type {
	case "reference":
		return rankReference
	case "token":
		return rankToken
	case "string", "uri":
		return rankString
	}
	return rankRange
}

func (b *builder) alias() string {
	b.n++
	return fmt.Sprintf("x%d", b.n)
}

func qerr(p *params.Param, format string, a ...any) error {
	name := "?"
	if p != nil {
		name = p.Code
	}
	return &query.Error{Param: name, Msg: fmt.Sprintf(format, a...)}
}

func (b *builder) clause(rt, a string, c query.Clause) (string, error) {
	if c.Has != nil {
		return b.has(rt, a, c.Has, c)
	}
	if len(c.Chain) > 0 {
		return b.chain(rt, a, c.Chain, c)
	}
	return b.values(rt, a, c.Param, c)
}

// refPIDs are the parameter numbers whose token rows hold a reference
// parameter's values (its own, or those of the parameters it aliases).
func refPIDs(rt string, p *params.Param) []int32 {
	if al := aliasOf(rt, p); al != nil {
		if al.Ref != nil {
			return []int32{PID(rt, al.Ref.Code)}
		}
		var out []int32
		for _, u := range al.Union {
			out = append(out, refPIDs(rt, u)...)
		}
		return out
	}
	return []int32{PID(rt, p.Code)}
}

// pidList is a list of parameter numbers as SQL literals (see pidSQL).
func (b *builder) pidList(pids []int32) string {
	s := make([]string, len(pids))
	for i, p := range pids {
		s[i] = pidSQL(p)
	}
	return strings.Join(s, ", ")
}

// pidSQL is a parameter number as an SQL literal. Parameter numbers are
// Ward's own constants (search.PID), never input, so they are written into
// the statement instead of bound: a plan made without the bound values
// (PostgreSQL's cached generic plans) still knows which parameter it
// reads, so it can estimate it from the column statistics and prove the
// predicate of a partial index on some parameters.
func pidSQL(p int32) string { return strconv.FormatInt(int64(p), 10) }

// PIDSQL is a parameter number as an SQL literal, for conditions on index
// rows written outside Plan (the access restriction, _revinclude): see
// pidSQL.
func PIDSQL(p int32) string { return pidSQL(p) }

// PIDListSQL is a list of parameter numbers as SQL literals.
func PIDListSQL(ps []int32) string { return (&builder{}).pidList(ps) }

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// chain: a's reference parameter points at a resource of the hop's type
// that satisfies the rest.
func (b *builder) chain(rt, a string, hops []query.Hop, c query.Clause) (string, error) {
	hop := hops[0]
	if hop.Type == "" {
		return "", qerr(hop.Param, "the chain needs the target type (%s:Type.param)", hop.Param.Code)
	}
	t, r2 := b.alias(), b.alias()
	var sb strings.Builder
	sb.WriteString(a + `.rid IN (SELECT ` + t + `.rid FROM search_token ` + t + ` JOIN resources ` + r2 + ` ON ` + r2 + `.refh = ` + t + `.h WHERE ` + t + `.p IN (`)
	sb.WriteString(b.pidList(refPIDs(rt, hop.Param)))
	sb.WriteString(`) AND ` + r2 + `.tenant = ? AND ` + r2 + `.type = ? AND ` + r2 + `.deleted = 0 AND `)
	b.args = append(b.args, b.tenant, hop.Type)
	if err := b.restrict(&sb, hop.Type, r2); err != nil {
		return "", err
	}
	var inner string
	var err error
	if len(hops) > 1 {
		inner, err = b.chain(hop.Type, r2, hops[1:], c)
	} else {
		inner, err = b.values(hop.Type, r2, c.Param, c)
	}
	if err != nil {
		return "", err
	}
	sb.WriteString(`(` + inner + `))`)
	return sb.String(), nil
}

// has: some resource of h.Type refers to a through h.Ref and satisfies the
// rest.
func (b *builder) has(rt, a string, h *query.Has, c query.Clause) (string, error) {
	t, r2 := b.alias(), b.alias()
	var sb strings.Builder
	sb.WriteString(a + `.refh IN (SELECT ` + t + `.h FROM search_token ` + t + ` JOIN resources ` + r2 + ` ON ` + r2 + `.rid = ` + t + `.rid WHERE ` + t + `.p IN (`)
	sb.WriteString(b.pidList(refPIDs(h.Type, h.Ref)))
	sb.WriteString(`) AND ` + r2 + `.tenant = ? AND ` + r2 + `.type = ? AND ` + r2 + `.deleted = 0 AND `)
	b.args = append(b.args, b.tenant, h.Type)
	if err := b.restrict(&sb, h.Type, r2); err != nil {
		return "", err
	}
	var inner string
	var err error
	if h.Next != nil {
		inner, err = b.has(h.Type, r2, h.Next, c)
	} else {
		inner, err = b.values(h.Type, r2, c.Param, c)
	}
	if err != nil {
		return "", err
	}
	sb.WriteString(`(` + inner + `))`)
	return sb.String(), nil
}

// restrict writes the caller's restriction of the joined row r2 (of type
// typ), if Options.Restrict gives one, followed by AND.
func (b *builder) restrict(sb *strings.Builder, typ, r2 string) error {
	if b.opts.Restrict == nil {
		return nil
	}
	w, args, err := b.opts.Restrict(typ, r2)
	if err != nil || w == "" {
		return err
	}
	sb.WriteString(`(` + w + `) AND `)
	b.args = append(b.args, args...)
	return nil
}

// values is the condition of one clause's parameter and ORed values on a.
func (b *builder) values(rt, a string, p *params.Param, c query.Clause) (string, error) {
	if al := aliasOf(rt, p); al != nil {
		if al.Ref != nil {
			c2 := c
			if c2.Modifier == "" || c2.Modifier == al.RefType {
				c2.Modifier = al.RefType
			}
			return b.values(rt, a, al.Ref, c2)
		}
		if al.Join != nil {
			return b.join(rt, a, p, al.Join, c)
		}
		var ors []string
		for _, u := range al.Union {
			w, err := b.values(rt, a, u, c)
			if err != nil {
				return "", err
			}
			ors = append(ors, `(`+w+`)`)
		}
		return strings.Join(ors, ` OR `), nil
	}
	switch p.Code {
	case "_id":
		return b.ids(rt, a, c)
	case "_lastUpdated":
		if c.Missing != nil {
			return b.constant(!*c.Missing), nil
		}
		var ors []string
		for _, v := range c.Values {
			w, args := dateCond(a+".last_updated", a+".last_updated", v, b.opts.Now())
			b.args = append(b.args, args...)
			ors = append(ors, `(`+w+`)`)
		}
		return strings.Join(ors, ` OR `), nil
	}
	if !Indexed(rt, p) {
		return "", qerr(p, "%s is not searchable on %s in Ward", p.Code, rt)
	}
	pid := PID(rt, p.Code)
	if rt == "" && b.sysPIDs != nil {
		ps := make([]int32, len(b.sysTypes))
		for i, t := range b.sysTypes {
			ps[i] = PID(t, p.Code)
		}
		b.sysPIDs[pid] = ps
	}
	if c.Missing != nil {
		table := b.table(rt, p)
		x := b.alias()
		cond := b.pidEq(x+`.p`, pid)
		if pt := b.part(rt, p); pt != nil {
			cond = b.pidEq(x+`.p`, PID(rt, pt.Parent.Code)) + ` AND ` + x + `.t = ` + strconv.Itoa(int(pt.Tag))
		} else if c := contactOf(rt, p); c != nil {
			cond = b.pidEq(x+`.p`, PID(rt, c.Parent.Code)) + ` AND ` + x + `.s = ` + strconv.Itoa(int(c.Tag))
		}
		w := `EXISTS (SELECT 1 FROM ` + table + ` ` + x + ` WHERE ` + x + `.rid = ` + a + `.rid AND ` + cond + `)`
		if *c.Missing {
			w = `NOT ` + w
		}
		return w, nil
	}
	if c.Modifier == "not" {
		var ors []string
		x := b.alias()
		route := ""
		if ct := contactOf(rt, p); ct != nil {
			pid, route = PID(rt, ct.Parent.Code), ` AND `+x+`.s = `+strconv.Itoa(int(ct.Tag))
		}
		for _, v := range c.Values {
			if holdsContacts(rt, p) && v.HasSystem && v.System == "" {
				v.HasSystem = false
			}
			w, args, err := b.tokenCond(x, v)
			if err != nil {
				return "", qerr(p, "%v", err)
			}
			b.args = append(b.args, args...)
			ors = append(ors, `(`+w+`)`)
		}
		return a + `.rid NOT IN (SELECT ` + x + `.rid FROM search_token ` + x + ` WHERE ` + b.pidEq(x+`.p`, pid) + route + ` AND (` + strings.Join(ors, ` OR `) + `))`, nil
	}
	var ors []string
	for _, v := range c.Values {
		w, err := b.value(rt, a, p, pid, c.Modifier, v)
		if err != nil {
			return "", err
		}
		ors = append(ors, `(`+w+`)`)
	}
	if len(ors) == 0 {
		return "", qerr(p, "no value")
	}
	return strings.Join(ors, ` OR `), nil
}

// join is a composite answered by its components' own parameters on the
// same resource (see alias.Join): each value needs both parts to match.
func (b *builder) join(rt, a string, p *params.Param, parts []*params.Param, c query.Clause) (string, error) {
	if c.Missing != nil {
		var ws []string
		for _, q := range parts {
			x := b.alias()
			ws = append(ws, `EXISTS (SELECT 1 FROM `+b.table(rt, q)+` `+x+` WHERE `+x+`.rid = `+a+`.rid AND `+x+`.p = `+pidSQL(PID(rt, q.Code))+`)`)
		}
		w := strings.Join(ws, ` AND `)
		if *c.Missing {
			w = `NOT (` + w + `)`
		}
		return w, nil
	}
	if c.Modifier != "" {
		return "", qerr(p, "modifier :%s is not supported on composites", c.Modifier)
	}
	var ors []string
	for _, v := range c.Values {
		if len(v.Components) != len(parts) {
			return "", qerr(p, "a composite value has %d parts separated by $", len(parts))
		}
		var ands []string
		probe := b.probe
		for i, q := range parts {
			w, err := b.value(rt, a, q, PID(rt, q.Code), "", v.Components[i])
			if err != nil {
				b.probe = probe
				return "", err
			}
			ands = append(ands, `(`+w+`)`)
			// The first part lists candidates (unless the whole clause
			// probes); the others test them.
			b.probe = true
		}
		b.probe = probe
		ors = append(ors, `(`+strings.Join(ands, ` AND `)+`)`)
	}
	if len(ors) == 0 {
		return "", qerr(p, "no value")
	}
	return strings.Join(ors, ` OR `), nil
}

func (b *builder) constant(t bool) string {
	if t {
		return `1 = 1`
	}
	return `1 = 0`
}

func (b *builder) ids(rt, a string, c query.Clause) (string, error) {
	if c.Missing != nil {
		return b.constant(!*c.Missing), nil
	}
	var ids []string
	for _, v := range c.Values {
		id := v.Code
		if id == "" {
			id = v.Text
		}
		if id == "" {
			id = v.Raw
		}
		ids = append(ids, id)
	}
	if b.driving && a == "r" && rt != "" && c.Modifier != "not" && !b.opts.IDsByKey {
		// The driver: the rows of the ids, by the resources key, listed
		// as rids. Written as r.id IN (...), SQLite's planner prefers to
		// walk every row of the type by (tenant, type, deleted) in rid
		// order (no sort for the page) over eight seeks by id; listed as
		// rids, it seeks each of them by rid. PostgreSQL plans either
		// form by the key (Options.IDsByKey).
		k := b.alias()
		b.args = append(b.args, b.tenant, rt)
		for _, id := range ids {
			b.args = append(b.args, id)
		}
		return a + `.rid IN (SELECT ` + k + `.rid FROM resources ` + k + ` WHERE ` + k + `.tenant = ? AND ` + k + `.type = ? AND ` + k + `.id IN (` + placeholders(len(ids)) + `))`, nil
	}
	for _, id := range ids {
		b.args = append(b.args, id)
	}
	w := a + `.id IN (` + placeholders(len(ids)) + `)`
	if c.Modifier == "not" {
		w = a + `.id NOT IN (` + placeholders(len(ids)) + `)`
	}
	return w, nil
}

// table is where a parameter's presence shows.
func (b *builder) table(rt string, p *params.Param) string {
	switch p.Type {
	case "date":
		return "search_date"
	case "number", "quantity":
		return "search_number"
	case "string":
		if b.blind(rt, p) {
			return "search_prefix"
		}
		return "search_string"
	case "composite":
		switch byURL(p.Components[1].Definition).Type {
		case "date":
			return "search_date"
		case "number", "quantity":
			return "search_number"
		}
	}
	return "search_token"
}

func (b *builder) blind(rt string, p *params.Param) bool {
	return !b.opts.Leaky && Blinded(rt, p)
}

// part is the part p is of its parent when p's values are blinded (and so
// stored with the parent's rows), or nil.
func (b *builder) part(rt string, p *params.Param) *part {
	if !b.blind(rt, p) {
		return nil
	}
	return partOf(rt, p)
}

// in wraps a row condition: a's rid has a row of table with parameter pid
// that satisfies cond (whose arguments follow).
func (b *builder) in(a, table string, pid int32, x, cond string, args ...any) string {
	b.args = append(b.args, args...)
	if b.probe {
		// A scalar subquery, not EXISTS: PostgreSQL turns EXISTS into a
		// join it may reorder, and with a keyed hash's frequency unknown to
		// its statistics it then drove a patient's search from a code
		// shared by a million Observations. A scalar subquery stays a
		// per-candidate probe on both databases.
		p := b.pidEq(x+`.p`, pid)
		if b.opts.ProbeByRID {
			// Only the rid index may answer a probe: a plan made without
			// the values (a cached generic plan) estimates any keyed hash
			// at a row or two and would otherwise seek the value index
			// and filter it by rid, reading every row of a common code
			// for each candidate. p + 0 is no index key.
			p = b.pidEq(x+`.p + 0`, pid)
		}
		return `(SELECT 1 FROM ` + table + ` ` + x + ` WHERE ` + x + `.rid = ` + a + `.rid AND ` + p + ` AND ` + cond + ` LIMIT 1) IS NOT NULL`
	}
	lcond := b.pidEq(x+`.p`, pid) + ` AND ` + cond
	sql := a + `.rid IN (SELECT ` + x + `.rid FROM ` + table + ` ` + x + ` WHERE ` + lcond + `)`
	if a == "r" {
		if b.listing {
			b.listed = nil // a second list: not one lookup
		} else {
			b.listed = &listing{sql: sql, table: table, alias: x, cond: lcond}
		}
		b.listing = true
	}
	return sql
}

func (b *builder) value(rt, a string, p *params.Param, pid int32, mod string, v query.Value) (string, error) {
	x := b.alias()
	switch p.Type {
	case "token":
		switch mod {
		case "text":
			n := value.Normalize(v.Text)
			if n == "" {
				return "", qerr(p, ":text needs letters or digits")
			}
			return b.in(a, "search_token", TextPID(pid), x, x+`.h = ?`, b.k.Key(kindExact, n)), nil
		case "of-type":
			return b.in(a, "search_token", PID(rt, p.Code+variantOfType), x, x+`.h = ?`,
				b.k.Key(kindOfType, v.System+"|"+v.Code+"|"+v.Text)), nil
		case "":
		default:
			return "", qerr(p, "modifier :%s is not supported on tokens", mod)
		}
		if holdsContacts(rt, p) && v.HasSystem && v.System == "" {
			v.HasSystem = false // a contact point has no namespace: |value is value
		}
		w, args, err := b.tokenCond(x, v)
		if err != nil {
			return "", qerr(p, "%v", err)
		}
		if c := contactOf(rt, p); c != nil {
			pid, w = PID(rt, c.Parent.Code), w+` AND `+x+`.s = `+strconv.Itoa(int(c.Tag))
		}
		return b.in(a, "search_token", pid, x, w, args...), nil
	case "reference":
		if mod == "identifier" {
			w, args, err := b.tokenCond(x, v)
			if err != nil {
				return "", qerr(p, "%v", err)
			}
			return b.in(a, "search_token", PID(rt, p.Code+variantIdentifier), x, w, args...), nil
		}
		hs, err := b.refHashes(rt, p, mod, v)
		if err != nil {
			return "", err
		}
		args := make([]any, len(hs))
		for i, h := range hs {
			args[i] = h
		}
		return b.in(a, "search_token", pid, x, x+`.h IN (`+placeholders(len(hs))+`)`, args...), nil
	case "string":
		return b.stringCond(rt, a, p, pid, x, mod, v)
	case "uri":
		switch mod {
		case "":
			if u, ver, ok := strings.Cut(v.Text, "|"); ok && p.Code == "url" {
				return b.versioned(rt, a, pid, x, u, ver)
			}
			return b.in(a, "search_token", pid, x, x+`.h = ?`, b.k.Key(kindURL, v.Text)), nil
		case "below":
			return b.in(a, "search_string", pid, x, x+`.v >= ? AND `+x+`.v < ?`, v.Text, v.Text+"\U0010FFFF"), nil
		case "above":
			var pre []any
			for i := 1; i <= len(v.Text); i++ {
				if i == len(v.Text) || v.Text[i] == '/' {
					pre = append(pre, v.Text[:i])
				}
			}
			return b.in(a, "search_string", pid, x, x+`.v IN (`+placeholders(len(pre))+`)`, pre...), nil
		}
		return "", qerr(p, "modifier :%s is not supported on uri", mod)
	case "date":
		return b.dateValue(rt, a, p, pid, x, 0, v)
	case "number", "quantity":
		w, args := b.numberArgs(x, v)
		return b.in(a, "search_number", pid, x, x+`.k = 0 AND `+w, args...), nil
	case "composite":
		return b.composite(a, p, pid, x, v)
	}
	return "", qerr(p, "parameters of type %s are not supported", p.Type)
}

// versioned is url=X|version on a canonical resource (search.html,
// canonical references): its url is X and its version the one given.
// ('|' cannot appear in a URI unescaped, so a url never holds one.)
func (b *builder) versioned(rt, a string, pid int32, x, u, ver string) (string, error) {
	vp, ok := params.Lookup(rt, "version")
	if !ok || vp.Type != "token" || !Indexed(rt, vp) {
		return "", qerr(vp, "%s has no version to search url|version by", rt)
	}
	if u == "" || ver == "" {
		return "", qerr(vp, "url|version needs both a url and a version")
	}
	w := b.in(a, "search_token", pid, x, x+`.h = ?`, b.k.Key(kindURL, u))
	// The url lists the candidates (unless the clause probes); the
	// version tests them.
	probe := b.probe
	b.probe = true
	y := b.alias()
	cond, args, err := b.tokenCond(y, query.Value{Code: ver})
	if err != nil {
		b.probe = probe
		return "", qerr(vp, "%v", err)
	}
	w += ` AND ` + b.in(a, "search_token", PID(rt, vp.Code), y, cond, args...)
	b.probe = probe
	return w, nil
}

// tokenCond is the row condition of a token value and its arguments.
func (b *builder) tokenCond(x string, v query.Value) (string, []any, error) {
	switch {
	case v.SystemOnly:
		return x + `.s = ?`, []any{SystemHash(b.k, v.System)}, nil
	case v.Code == "":
		return "", nil, fmt.Errorf("a token needs a code")
	case v.HasSystem && v.System != "":
		return x + `.h = ? AND ` + x + `.s = ?`, []any{b.k.Key(kindToken, v.Code), SystemHash(b.k, v.System)}, nil
	case v.HasSystem:
		return x + `.h = ? AND ` + x + `.s = 0`, []any{b.k.Key(kindToken, v.Code)}, nil
	default:
		return x + `.h = ?`, []any{b.k.Key(kindToken, v.Code)}, nil
	}
}

// refHashes are the hashes a reference value may be stored as.
func (b *builder) refHashes(rt string, p *params.Param, mod string, v query.Value) ([]int64, error) {
	if v.Type != "" && v.ID != "" {
		if mod != "" && mod != v.Type {
			return nil, qerr(p, "the value names %s but the modifier :%s", v.Type, mod)
		}
		if v.URL != "" {
			// An absolute URL ending in Type/id: a reference to one of
			// ours by full URL, or a canonical (indexed as its URL).
			return []int64{RefHash(b.k, v.Type, v.ID), b.k.Key(kindURL, v.URL)}, nil
		}
		return []int64{RefHash(b.k, v.Type, v.ID)}, nil
	}
	if v.URL != "" {
		return []int64{b.k.Key(kindURL, v.URL)}, nil
	}
	if v.ID == "" {
		return nil, qerr(p, "a reference needs Type/id, an id or a URL")
	}
	if mod != "" {
		return []int64{RefHash(b.k, mod, v.ID)}, nil
	}
	targets := p.Target
	if len(targets) == 0 {
		return nil, qerr(p, "give the type: %s=Type/%s", p.Code, v.ID)
	}
	out := make([]int64, 0, len(targets))
	for _, t := range targets {
		out = append(out, RefHash(b.k, t, v.ID))
	}
	return out, nil
}

func (b *builder) stringCond(rt, a string, p *params.Param, pid int32, x, mod string, v query.Value) (string, error) {
	blind := b.blind(rt, p)
	// A blinded part (family) is a condition on its parent's rows (name).
	tag, longTag := "", ""
	if pt := b.part(rt, p); pt != nil {
		pid, tag, longTag = PID(rt, pt.Parent.Code), ` AND `+x+`.t = `+strconv.Itoa(int(pt.Tag)), ` AND `+x+`.t = `+strconv.Itoa(int(pt.Tag|LongRow))
	}
	if mod == "exact" {
		if blind {
			w, args := ExactCond(b.k, x, v.Text)
			return b.in(a, "search_prefix", pid, x, w+tag, args...), nil
		}
		return b.in(a, "search_token", PID(rt, p.Code+variantExact), x, x+`.h = ?`, b.k.Key(kindExact, v.Text)), nil
	}
	n := value.Normalize(v.Text)
	if n == "" {
		return "", qerr(p, "the value has no letters or digits")
	}
	if blind {
		switch mod {
		case "":
			if utf8.RuneCountInString(n) < MinPrefix {
				return "", qerr(p, "%s.%s is stored as blinded prefixes of %d or more characters: search with at least %d", rt, p.Code, MinPrefix, MinPrefix)
			}
			w, args, long := PrefixCond(b.k, x, n)
			if long {
				tag = longTag
			}
			return b.in(a, "search_prefix", pid, x, w+tag, args...), nil
		case "contains":
			return "", qerr(p, "%s.%s is stored only as blinded prefixes, which cannot answer :contains; use a prefix or :exact (or enable the leaky index, see docs/security.md)", rt, p.Code)
		}
		return "", qerr(p, "modifier :%s is not supported on strings", mod)
	}
	switch mod {
	case "":
		return b.in(a, "search_string", pid, x, x+`.v >= ? AND `+x+`.v < ?`, n, n+"\U0010FFFF"), nil
	case "contains":
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(n)
		return b.in(a, "search_string", pid, x, x+`.v LIKE ? ESCAPE '\'`, "%"+esc+"%"), nil
	}
	return "", qerr(p, "modifier :%s is not supported on strings", mod)
}

func (b *builder) dateValue(rt, a string, p *params.Param, pid int32, x string, k int64, v query.Value) (string, error) {
	if b.blind(rt, p) {
		if v.Prefix == value.EQ || v.Prefix == "" {
			n := map[value.Precision]int{value.Year: 4, value.Month: 7, value.Day: 10}[v.Date.Precision]
			if n == 0 {
				return "", qerr(p, "%s.%s takes a date (YYYY, YYYY-MM or YYYY-MM-DD), not a time", rt, p.Code)
			}
			s := time.UnixMicro(v.Date.Lo).UTC().Format("2006-01-02")[:n]
			w, args := BlindDateCond(b.k, x, s)
			return b.in(a, "search_prefix", pid, x, w, args...), nil
		}
		if v.Date.Precision != value.Year {
			return "", qerr(p, "%s.%s is blinded: ranges work at year precision (e.g. ge1950); use a year, or enable the leaky index (docs/security.md)", rt, p.Code)
		}
	}
	w, args := dateCond(x+".lo", x+".hi", v, b.opts.Now())
	return b.in(a, "search_date", pid, x, x+`.k = ? AND `+w, append([]any{k}, args...)...), nil
}

// dateCond compares a stored range [lo, hi] with a search value's range
// [ql, qh] as the R4 search page defines each prefix.
func dateCond(lo, hi string, v query.Value, now time.Time) (string, []any) {
	ql, qh := v.Date.Lo, v.Date.Hi
	switch v.Prefix {
	case value.NE:
		return `(` + lo + ` < ? OR ` + hi + ` > ?)`, []any{ql, qh}
	case value.GT:
		return hi + ` > ?`, []any{qh}
	case value.LT:
		return lo + ` < ?`, []any{ql}
	case value.GE:
		return hi + ` >= ?`, []any{ql}
	case value.LE:
		return lo + ` <= ?`, []any{qh}
	case value.SA:
		return lo + ` > ?`, []any{qh}
	case value.EB:
		return hi + ` < ?`, []any{ql}
	case value.AP:
		// Approximately: within 10% of the distance between the value and
		// now, at least a day.
		d := now.UnixMicro() - (ql/2 + qh/2)
		if d < 0 {
			d = -d
		}
		d = max(d/10, int64(24*time.Hour/time.Microsecond))
		return lo + ` <= ? AND ` + hi + ` >= ?`, []any{satAdd(qh, d), satAdd(ql, -d)}
	default:
		return lo + ` >= ? AND ` + hi + ` <= ?`, []any{ql, qh}
	}
}

func satAdd(a, d int64) int64 {
	s := a + d
	if d > 0 && s < a {
		return math.MaxInt64
	}
	if d < 0 && s > a {
		return math.MinInt64
	}
	return s
}

// numberCond compares a stored number or range with a search value: eq
// and ne use the precision the value was written with. unit is the
// tenant's hash of the value's unit code (0: any unit).
func numberCond(x string, v query.Value, unit int32) (string, []any) {
	n := v.Number
	var w string
	var args []any
	switch v.Prefix {
	case value.NE:
		w, args = `(`+x+`.lo < ? OR `+x+`.hi >= ?)`, []any{n.Lo, n.Hi}
	case value.GT:
		w, args = x+`.hi > ?`, []any{n.Value}
	case value.LT:
		w, args = x+`.lo < ?`, []any{n.Value}
	case value.GE:
		w, args = x+`.hi >= ?`, []any{n.Value}
	case value.LE:
		w, args = x+`.lo <= ?`, []any{n.Value}
	case value.SA:
		w, args = x+`.lo > ?`, []any{n.Value}
	case value.EB:
		w, args = x+`.hi < ?`, []any{n.Value}
	case value.AP:
		d := math.Abs(n.Value) * 0.1
		w, args = x+`.lo <= ? AND `+x+`.hi >= ?`, []any{n.Value + d, n.Value - d}
	default:
		w, args = x+`.lo >= ? AND `+x+`.hi < ?`, []any{n.Lo, n.Hi}
	}
	if unit != 0 {
		w += ` AND ` + x + `.u = ?`
		args = append(args, unit)
	}
	return w, args
}

func (b *builder) composite(a string, p *params.Param, pid int32, x string, v query.Value) (string, error) {
	if len(v.Components) != 2 {
		return "", qerr(p, "a composite value has two parts separated by $")
	}
	first, second := v.Components[0], v.Components[1]
	var k int64
	switch {
	case first.Type != "" && first.ID != "":
		k = RefHash(b.k, first.Type, first.ID)
	case first.Code != "":
		k = b.k.Key(kindToken, first.Code)
	default:
		return "", qerr(p, "the first part of a composite value needs a code")
	}
	st := byURL(p.Components[1].Definition)
	switch st.Type {
	case "token":
		if second.Code == "" {
			return "", qerr(p, "the second part needs a code")
		}
		return b.in(a, "search_token", pid, x, x+`.h = ?`, CompositeHash(k, b.k.Key(kindToken, second.Code))), nil
	case "reference":
		if second.Type == "" || second.ID == "" {
			return "", qerr(p, "the second part needs Type/id")
		}
		return b.in(a, "search_token", pid, x, x+`.h = ?`, CompositeHash(k, RefHash(b.k, second.Type, second.ID))), nil
	case "string":
		return b.in(a, "search_token", pid, x, x+`.h = ?`, CompositeHash(k, b.k.Key(kindExact, value.Normalize(second.Text)))), nil
	case "date":
		w, args := dateCond(x+".lo", x+".hi", second, b.opts.Now())
		return b.in(a, "search_date", pid, x, x+`.k = ? AND `+w, append([]any{k}, args...)...), nil
	case "number", "quantity":
		w, args := b.numberArgs(x, second)
		return b.in(a, "search_number", pid, x, x+`.k = ? AND `+w, append([]any{k}, args...)...), nil
	}
	return "", qerr(p, "composite of %s is not supported", st.Type)
}

// numberArgs is numberCond with the unit hashed by this tenant's keyer.
func (b *builder) numberArgs(x string, v query.Value) (string, []any) {
	return numberCond(x, v, UnitHash(b.k, v.UnitCode))
}

// order is the SQL of one sort key over r; missing values sort last.
func (b *builder) order(rt string, s query.SortKey) (store.Order, error) {
	switch s.Name {
	case "_id":
		return store.Order{Expr: "r.id", Desc: s.Descending}, nil
	case "_lastUpdated":
		return store.Order{Expr: "r.last_updated", Desc: s.Descending}, nil
	}
	p := s.Param
	if p == nil || rt == "" {
		return store.Order{}, qerr(p, "cannot sort by %s here", s.Name)
	}
	if !Indexed(rt, p) {
		return store.Order{}, qerr(p, "cannot sort by %s: it is not indexed on its own", p.Code)
	}
	pid := PID(rt, p.Code)
	agg, col, table := "MIN", "lo", ""
	var missing any
	switch p.Type {
	case "date":
		if b.blind(rt, p) {
			return store.Order{}, qerr(p, "cannot sort by %s: it is blinded", p.Code)
		}
		table = "search_date"
		missing = int64(math.MaxInt64)
		if s.Descending {
			agg, col, missing = "MAX", "hi", int64(math.MinInt64)
		}
	case "number", "quantity":
		table = "search_number"
		missing = math.MaxFloat64
		if s.Descending {
			agg, col, missing = "MAX", "hi", -math.MaxFloat64
		}
	case "string":
		if b.blind(rt, p) {
			return store.Order{}, qerr(p, "cannot sort by %s: names and other identifying strings are stored as blind indexes, which have no order", p.Code)
		}
		table, col = "search_string", "v"
		missing = "\U0010FFFF"
		if s.Descending {
			agg, missing = "MAX", ""
		}
	default:
		return store.Order{}, qerr(p, "cannot sort by %s: %s values are stored as keyed hashes, which have no order", p.Code, p.Type)
	}
	x := b.alias()
	pc := x + `.p = ` + pidSQL(pid)
	if b.opts.ProbeByRID {
		pc = x + `.p + 0 = ` + pidSQL(pid) // by the rid index only, as in()
	}
	expr := `COALESCE((SELECT ` + agg + `(` + x + `.` + col + `) FROM ` + table + ` ` + x + ` WHERE ` + x + `.rid = r.rid AND ` + pc + `), ?)`
	return store.Order{Expr: expr, Args: []any{missing}, Desc: s.Descending}, nil
}

// RefPIDs are the parameter numbers holding a reference parameter's rows.
func RefPIDs(rt string, p *params.Param) []int32 { return refPIDs(rt, p) }

// Supported reports whether Ward can search a parameter with a modifier at
// all (query.Options.Supported): not the parameters without an expression,
// not three-part composites, not the token modifiers that need a
// terminology server.
func Supported(p *params.Param, modifier string) bool {
	switch p.Code {
	case "_text", "_content", "_query", "_list":
		return false
	}
	switch p.Type {
	case "special":
		return false
	case "composite":
		if len(p.Components) != 2 {
			return false
		}
	}
	switch modifier {
	case "in", "not-in", "above", "below":
		return p.Type == "uri"
	}
	return true
}

// Searchable reports whether a parameter of rt can be searched in Ward:
// the same tables Plan uses (its own rows, an alias of other rows, or a
// column of the resource row).
func Searchable(rt string, p *params.Param) bool {
	if !Supported(p, "") {
		return false
	}
	switch p.Code {
	case "_id", "_lastUpdated":
		return true
	}
	return Indexed(rt, p) || aliasOf(rt, p) != nil
}

// Capability lists, per resource type, the parameters Searchable allows,
// with a note where a parameter is blinded, for the CapabilityStatement.
func Capability(o Options) map[string][]CapParam {
	out := map[string][]CapParam{}
	for _, rt := range fhir.ResourceTypes() {
		for _, p := range params.ForType(rt) {
			if !Searchable(rt, p) {
				continue
			}
			c := CapParam{Name: p.Code, Type: p.Type}
			if !o.Leaky && Blinded(rt, p) {
				if p.Type == "string" {
					c.Doc = "Blind index: starts-with (at least 2 characters) and :exact; no :contains, no sort."
				} else {
					c.Doc = "Blind index: equality at year, month or day; ranges at year precision, 90+ years capped."
				}
			}
			out[rt] = append(out[rt], c)
		}
		// _list has no SearchParameter of its own (search.html#list).
		out[rt] = append(out[rt], CapParam{Name: "_list", Type: "special",
			Doc: "The resources a List names in its entries (_has:List:item:_id); functional lists ($...) are not supported."})
	}
	return out
}

// CapParam is one supported parameter of one type.
type CapParam struct {
	Name, Type, Doc string
}
