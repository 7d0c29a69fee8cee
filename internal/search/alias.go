package search

import (
	"slices"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/search/params"
)

// An alias is a parameter answered from other parameters' rows instead of
// its own, because R4 defines it as their union (Observation combo-code is
// code | component.code) or as one of them restricted to a target type
// (Observation patient is subject.where(resolve() is Patient)). Not storing
// the same values twice keeps an Observation's index under 1 KiB.
type alias struct {
	// Union lists the parameters whose rows, together, are this one's.
	Union []*params.Param
	// Join: this composite's base is the resource itself, so a value
	// matches when the resource matches each component's own parameter
	// (Observation code-value-quantity is code and value-quantity on the
	// same Observation): the same answer as the composite's own rows,
	// which would be the cross product of those parameters' values.
	Join []*params.Param
	// Ref and RefType: this parameter is Ref restricted to RefType.
	Ref     *params.Param
	RefType string
}

var aliases sync.Map // "Type.code" -> *alias (nil: not an alias)

// aliasOf returns the alias of p for rt, or nil.
func aliasOf(rt string, p *params.Param) *alias {
	key := rt + "." + p.Code
	if a, ok := aliases.Load(key); ok {
		return a.(*alias)
	}
	a := findAlias(rt, p)
	aliases.Store(key, a)
	return a
}

func findAlias(rt string, p *params.Param) *alias {
	expr := p.ExpressionFor(rt)
	if expr == "" || strings.HasPrefix(p.Code, "_") {
		return nil
	}
	// X.where(resolve() is T) with a parameter whose expression is X.
	if p.Type == "reference" {
		const w = ".where(resolve() is "
		if i := strings.Index(expr, w); i > 0 && strings.HasSuffix(expr, ")") && !strings.Contains(expr, " | ") {
			base, typ := expr[:i], strings.TrimSuffix(expr[i+len(w):], ")")
			for _, q := range params.ForType(rt) {
				if q != p && q.Type == "reference" && q.ExpressionFor(rt) == base && slices.Contains(q.Target, typ) {
					return &alias{Ref: q, RefType: typ}
				}
			}
		}
		return nil
	}
	if p.Type == "composite" {
		if j := findJoin(rt, p, expr); j != nil {
			return j
		}
	}
	if p.Type == "string" {
		// The same expression under another name (Patient phonetic is
		// Patient.name, as Ward does no phonetic matching): the first
		// such parameter's rows answer both.
		for _, q := range params.ForType(rt) {
			if q != p && q.Type == "string" && q.Code < p.Code && q.ExpressionFor(rt) == expr && !strings.HasPrefix(q.Code, "_") {
				return &alias{Union: []*params.Param{q}}
			}
		}
	}
	mine := branches(expr)
	if len(mine) < 2 {
		return nil
	}
	var cover []*params.Param
	covered := map[string]bool{}
	for _, q := range params.ForType(rt) {
		if q == p || q.Type != p.Type || !sameComponents(p, q) {
			continue
		}
		theirs := branches(q.ExpressionFor(rt))
		if len(theirs) == 0 || len(theirs) >= len(mine) {
			continue
		}
		sub := true
		for _, b := range theirs {
			if !slices.Contains(mine, b) {
				sub = false
				break
			}
		}
		if !sub {
			continue
		}
		cover = append(cover, q)
		for _, b := range theirs {
			covered[b] = true
		}
	}
	if len(covered) != len(mine) {
		return nil
	}
	return &alias{Union: cover}
}

func sameComponents(p, q *params.Param) bool {
	if len(p.Components) != len(q.Components) {
		return false
	}
	for i := range p.Components {
		if p.Components[i].Expression != q.Components[i].Expression {
			return false
		}
	}
	return true
}

// branches splits an expression at top-level " | ", trimming the
// parentheses around each branch.
func branches(expr string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch expr[i] {
		case '(':
			depth++
		case ')':
			depth--
		case '\'':
			for i++; i < len(expr) && expr[i] != '\''; i++ {
			}
		case '|':
			if depth == 0 {
				out = append(out, trimParens(expr[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, trimParens(expr[start:]))
}

func trimParens(s string) string {
	s = strings.TrimSpace(s)
	for len(s) > 1 && s[0] == '(' && s[len(s)-1] == ')' && balanced(s[1:len(s)-1]) {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	return s
}

func balanced(s string) bool {
	d := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			d++
		case ')':
			d--
			if d < 0 {
				return false
			}
		}
	}
	return d == 0
}

// findJoin makes a composite whose expression is the resource itself an
// alias of its components' parameters, when each of those is indexed on
// its own for rt.
func findJoin(rt string, p *params.Param, expr string) *alias {
	if expr != rt || len(p.Components) != 2 {
		return nil
	}
	var join []*params.Param
	for _, c := range p.Components {
		q := byURL(c.Definition)
		if q == nil || q.Type == "composite" || !slices.Contains(params.ForType(rt), q) || !Indexed(rt, q) || aliasOf(rt, q) != nil {
			return nil
		}
		join = append(join, q)
	}
	return &alias{Join: join}
}

// A part is a string parameter over one part of a name or address
// (Patient family is Patient.name.family) that, when blinded, is answered
// from its parent's rows (Patient name) restricted to the part's tag:
// each value of a name is stored once, not once per parameter (issue #24).
type part struct {
	Parent *params.Param
	Tag    int32
}

var partsOf sync.Map // "Type.code" -> *part (nil: not a part)

// partOf returns the part p is of rt, or nil.
func partOf(rt string, p *params.Param) *part {
	if p.Type != "string" {
		return nil
	}
	key := rt + "." + p.Code
	if a, ok := partsOf.Load(key); ok {
		return a.(*part)
	}
	var found *part
	expr := p.ExpressionFor(rt)
	if i := strings.LastIndex(expr, "."); i > 0 && !strings.ContainsAny(expr, "|()") {
		base, k := expr[:i], expr[i+1:]
		if tag := slices.Index(partKeys, k); tag >= 0 {
			for _, q := range params.ForType(rt) {
				if q != p && q.Type == "string" && q.ExpressionFor(rt) == base && aliasOf(rt, q) == nil {
					found = &part{Parent: q, Tag: int32(tag + 1)}
					break
				}
			}
		}
	}
	partsOf.Store(key, found)
	return found
}

// contactSystems are ContactPoint.system's codes; a contact point's row
// carries its system's tag (position plus one) in TokenRow.S, so that
// Patient phone (Patient.telecom.where(system='phone')) is answered from
// the telecom rows with the phone tag instead of rows of its own.
var contactSystems = []string{"phone", "fax", "email", "pager", "url", "sms", "other"}

func contactTag(sys string) int32 { return int32(slices.Index(contactSystems, sys) + 1) }

var contactsOf sync.Map // "Type.code" -> *part (nil: not a contact route)

// contactOf returns the telecom parameter and system tag that answer p
// on rt, or nil.
func contactOf(rt string, p *params.Param) *part {
	if p.Type != "token" {
		return nil
	}
	key := rt + "." + p.Code
	if a, ok := contactsOf.Load(key); ok {
		return a.(*part)
	}
	var found *part
	expr := p.ExpressionFor(rt)
	const w = ".where(system='"
	if i := strings.Index(expr, w); i > 0 && strings.HasSuffix(expr, "')") && !strings.Contains(expr, "|") {
		base, sys := expr[:i], expr[i+len(w):len(expr)-2]
		if tag := contactTag(sys); tag > 0 {
			for _, q := range params.ForType(rt) {
				if q != p && q.Type == "token" && q.ExpressionFor(rt) == base && aliasOf(rt, q) == nil {
					found = &part{Parent: q, Tag: tag}
					break
				}
			}
		}
	}
	contactsOf.Store(key, found)
	return found
}

// holdsContacts reports whether p's rows are contact points (a telecom
// parameter or one routed to it), whose S is a system tag, not a hash.
func holdsContacts(rt string, p *params.Param) bool {
	if p.Type != "token" {
		return false
	}
	if contactOf(rt, p) != nil {
		return true
	}
	for _, q := range params.ForType(rt) {
		if c := contactOf(rt, q); c != nil && c.Parent == p {
			return true
		}
	}
	return false
}
