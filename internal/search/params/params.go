// Package params is the table of the FHIR R4 (4.0.1) search parameters: what
// each parameter is called, its type, the resource types it applies to and
// the FHIRPath expression that extracts its values.
//
// The table is generated from the official SearchParameter Bundle (see
// README.md) and embedded, so the package needs no files at run time. It is
// loaded on first use and never changes afterwards: the *Param values it
// returns are shared and must be treated as read-only.
package params

//go:generate go run ./internal/gen -out r4-search-parameters.json.gz

import (
	"bytes"
	"compress/gzip"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
)

//go:embed r4-search-parameters.json.gz
var tableGz []byte

// Param is one R4 search parameter.
type Param struct {
	ID   string // SearchParameter.id, e.g. "clinical-patient"
	Code string // the name used in a query, e.g. "patient"
	// Type is the search parameter type: number, date, string, token,
	// reference, composite, quantity, uri or special.
	Type string
	// Expression is the FHIRPath expression as published; for a parameter
	// with several bases it is a union of one branch per base (see
	// ExpressionFor). Empty for _text, _content and _query, which have none.
	Expression string
	URL        string // canonical URL, e.g. http://hl7.org/fhir/SearchParameter/clinical-patient
	// XPathUsage is normal, phonetic, nearby, distance or other.
	XPathUsage string

	Base       []string // resource types (or Resource / DomainResource)
	Target     []string // for references: the resource types they may point to
	Modifier   []string // allowed modifiers; empty in R4 4.0.1 core
	Comparator []string // allowed comparators for number, date and quantity
	Components []Component

	// MultipleOr and MultipleAnd are nil when the definition leaves them
	// unset (the default: allowed).
	MultipleOr, MultipleAnd *bool

	branches []branch // Expression split at top-level |
}

// Component is one part of a composite parameter. Expression is evaluated
// relative to each value of the composite's own expression.
type Component struct {
	Definition string // canonical URL of the component's parameter
	Expression string
}

// branch is one top-level union member of an expression and the name it
// starts with ("" when it does not start with an identifier).
type branch struct {
	head string
	text string
}

// relative reports whether the branch starts with an element name rather
// than a type: it navigates from the resource itself, whatever its type.
// R4 has one such expression, InsurancePlan-name's "name | alias".
func (b branch) relative() bool {
	return b.head != "" && b.head[0] >= 'a' && b.head[0] <= 'z'
}

// appliesTo reports whether the branch is part of the expression for
// resourceType.
func (b branch) appliesTo(resourceType string) bool {
	return b.head == resourceType || b.head == "Resource" || b.head == "DomainResource" || b.relative()
}

type table struct {
	all    []*Param
	byType map[string][]*Param // specific bases only, sorted by code
	common []*Param            // base Resource
	domain []*Param            // base DomainResource
}

var (
	loadOnce sync.Once
	loaded   *table
	loadErr  error
)

func load() *table {
	loadOnce.Do(func() { loaded, loadErr = decode(tableGz) })
	if loadErr != nil {
		// The embedded table is generated and tested; failing to read it is
		// a build defect, not a run-time condition.
		panic("params: embedded table: " + loadErr.Error())
	}
	return loaded
}

type record struct {
	ID          string      `json:"id"`
	URL         string      `json:"url"`
	Code        string      `json:"code"`
	Type        string      `json:"type"`
	Base        []string    `json:"base"`
	Expression  string      `json:"expression"`
	XPathUsage  string      `json:"xpathUsage"`
	Target      []string    `json:"target"`
	Modifier    []string    `json:"modifier"`
	Comparator  []string    `json:"comparator"`
	MultipleOr  *bool       `json:"multipleOr"`
	MultipleAnd *bool       `json:"multipleAnd"`
	Component   []Component `json:"component"`
}

func decode(gz []byte) (*table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	var recs []record
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&recs); err != nil {
		return nil, err
	}
	t := &table{byType: make(map[string][]*Param)}
	for _, r := range recs {
		p := &Param{
			ID: r.ID, Code: r.Code, Type: r.Type, Expression: r.Expression, URL: r.URL,
			XPathUsage: r.XPathUsage, Base: r.Base, Target: r.Target, Modifier: r.Modifier,
			Comparator: r.Comparator, Components: r.Component,
			MultipleOr: r.MultipleOr, MultipleAnd: r.MultipleAnd,
		}
		p.branches = splitUnion(p.Expression)
		t.all = append(t.all, p)
		for _, b := range p.Base {
			switch b {
			case "Resource":
				t.common = append(t.common, p)
			case "DomainResource":
				t.domain = append(t.domain, p)
			default:
				if !fhir.IsResourceType(b) {
					return nil, fmt.Errorf("%s: base %q is not an R4 resource type", p.ID, b)
				}
				t.byType[b] = append(t.byType[b], p)
			}
		}
	}
	byCode := func(a, b *Param) int { return strings.Compare(a.Code, b.Code) }
	for _, ps := range t.byType {
		slices.SortStableFunc(ps, byCode)
	}
	slices.SortStableFunc(t.common, byCode)
	slices.SortStableFunc(t.domain, byCode)
	return t, nil
}

// All returns every R4 search parameter, sorted by ID.
func All() []*Param {
	return slices.Clone(load().all)
}

// isDomainResource reports whether a resource type specializes DomainResource:
// all R4 resource types except the three that derive from Resource directly.
func isDomainResource(resourceType string) bool {
	switch resourceType {
	case "Bundle", "Binary", "Parameters":
		return false
	}
	return true
}

// ForType returns the parameters that apply to resourceType: those whose base
// lists it, then those of Resource (_id, _lastUpdated, _profile, _query,
// _security, _source, _tag, _content) and, for a DomainResource, _text. It
// returns nil for a name that is not an R4 resource type.
//
// R4 publishes no SearchParameter for _list, _has, _type, _filter or
// _sort-style result parameters: those are defined by the search framework,
// not by expressions, and are not in this table.
func ForType(resourceType string) []*Param {
	if !fhir.IsResourceType(resourceType) {
		return nil
	}
	t := load()
	own := t.byType[resourceType]
	out := make([]*Param, 0, len(own)+len(t.common)+len(t.domain))
	out = append(out, own...)
	out = append(out, t.common...)
	if isDomainResource(resourceType) {
		out = append(out, t.domain...)
	}
	return out
}

// Lookup returns the parameter named code that applies to resourceType.
func Lookup(resourceType, code string) (*Param, bool) {
	if !fhir.IsResourceType(resourceType) {
		return nil, false
	}
	t := load()
	ps := t.byType[resourceType]
	if i, ok := slices.BinarySearchFunc(ps, code, func(p *Param, c string) int { return strings.Compare(p.Code, c) }); ok {
		return ps[i], true
	}
	for _, p := range t.common {
		if p.Code == code {
			return p, true
		}
	}
	if isDomainResource(resourceType) {
		for _, p := range t.domain {
			if p.Code == code {
				return p, true
			}
		}
	}
	return nil, false
}

// ExpressionFor returns the part of the expression that applies to
// resourceType: the top-level union branches that start with that type (after
// any opening parentheses), with Resource or DomainResource, or with an
// element name (a path relative to the resource), joined by " | ". It
// returns "" when resourceType is not one of the parameter's bases. A parameter defined for many bases (clinical-patient has 29) thus
// yields one short expression per type. It returns "" when no branch applies,
// including for parameters without an expression.
//
// Branches are split at | outside parentheses and string literals. That is
// exact for the R4 table, where no expression combines | with an operator of
// lower precedence (and, or, =, ...) at top level; the package tests check
// that.
func (p *Param) ExpressionFor(resourceType string) string {
	if !p.appliesTo(resourceType) {
		return ""
	}
	n, single := 0, ""
	for _, b := range p.branches {
		if b.appliesTo(resourceType) {
			n++
			single = b.text
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return single
	}
	var sb strings.Builder
	for _, b := range p.branches {
		if b.appliesTo(resourceType) {
			if sb.Len() > 0 {
				sb.WriteString(" | ")
			}
			sb.WriteString(b.text)
		}
	}
	return sb.String()
}

// appliesTo reports whether the parameter is defined for resourceType: one
// of its bases is the type, Resource, or DomainResource.
func (p *Param) appliesTo(resourceType string) bool {
	for _, b := range p.Base {
		if b == resourceType || b == "Resource" || b == "DomainResource" && isDomainResource(resourceType) {
			return true
		}
	}
	return false
}

// splitUnion splits expr at | signs outside parentheses, brackets, braces
// and quoted strings or identifiers.
func splitUnion(expr string) []branch {
	if expr == "" {
		return nil
	}
	var out []branch
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		switch c := expr[i]; c {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case '\'', '`', '"':
			// Skip to the closing quote, honouring backslash escapes.
			for i++; i < len(expr) && expr[i] != c; i++ {
				if expr[i] == '\\' {
					i++
				}
			}
		case '|':
			if depth == 0 {
				out = append(out, newBranch(expr[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, newBranch(expr[start:]))
}

func newBranch(s string) branch {
	s = strings.TrimSpace(s)
	h := strings.TrimLeft(s, "( \t\r\n")
	end := 0
	for end < len(h) && isIdentChar(h[end]) {
		end++
	}
	return branch{head: h[:end], text: s}
}

func isIdentChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
