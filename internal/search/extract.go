// Package search is Ward's FHIR search: the R4 parameter table (package
// params), the FHIRPath subset that extracts parameter values (package
// fhirpath) and, here, the per-type compiled extractors that tie them
// together. Index storage and SQL translation build on Extractor.
//
// Guarantee: an Extractor exists for every R4 resource type, and every
// expression of every parameter of that type compiles (tested over the whole
// table); extraction does no I/O.
package search

import (
	"fmt"
	"sync"

	"github.com/wardhealth/ward/internal/search/fhirpath"
	"github.com/wardhealth/ward/internal/search/params"
)

// Compiled is one search parameter with its expression for one resource
// type, compiled.
type Compiled struct {
	Param *params.Param
	// Expr is the part of the parameter's expression for the type (see
	// params.Param.ExpressionFor), or nil for _text, _content and _query,
	// which have no expression.
	Expr *fhirpath.Expr
	// Components are the compiled component expressions of a composite,
	// evaluated with fhirpath.Expr.EvalAt on each value of Expr.
	Components []*fhirpath.Expr
}

// Extractor evaluates the search parameters of one resource type.
type Extractor struct {
	resourceType string
	params       []Compiled
}

var extractors sync.Map // resource type -> *Extractor

// ExtractorFor returns the extractor of resourceType, compiling it on first
// use. It fails for a name that is not an R4 resource type, or if an
// expression does not compile (which the tests rule out for R4).
func ExtractorFor(resourceType string) (*Extractor, error) {
	if x, ok := extractors.Load(resourceType); ok {
		return x.(*Extractor), nil
	}
	ps := params.ForType(resourceType)
	if ps == nil {
		return nil, fmt.Errorf("search: %q is not an R4 resource type", resourceType)
	}
	x := &Extractor{resourceType: resourceType}
	for _, p := range ps {
		c := Compiled{Param: p}
		if e := p.ExpressionFor(resourceType); e != "" {
			expr, err := fhirpath.Compile(e)
			if err != nil {
				return nil, fmt.Errorf("search: parameter %s for %s: %w", p.ID, resourceType, err)
			}
			c.Expr = expr
		}
		for _, comp := range p.Components {
			expr, err := fhirpath.Compile(comp.Expression)
			if err != nil {
				return nil, fmt.Errorf("search: component %s of %s: %w", comp.Definition, p.ID, err)
			}
			c.Components = append(c.Components, expr)
		}
		x.params = append(x.params, c)
	}
	actual, _ := extractors.LoadOrStore(resourceType, x)
	return actual.(*Extractor), nil
}

// ResourceType returns the type the extractor is for.
func (x *Extractor) ResourceType() string { return x.resourceType }

// Params returns the compiled parameters, in params.ForType order. The
// slice is shared: do not modify it.
func (x *Extractor) Params() []Compiled { return x.params }

// Extract evaluates every parameter that has an expression on resource and
// calls visit with its values (possibly none). values is reused between
// calls: visit must copy what it keeps. It stops at the first error, from
// evaluation (wrapped with the parameter's id) or from visit.
func (x *Extractor) Extract(resource map[string]any, visit func(c *Compiled, values []fhirpath.Value) error) error {
	if rt, _ := resource["resourceType"].(string); rt != x.resourceType {
		return fmt.Errorf("search: extractor for %s given another resource type", x.resourceType)
	}
	var buf []fhirpath.Value
	for i := range x.params {
		c := &x.params[i]
		if c.Expr == nil {
			continue
		}
		var err error
		buf, err = c.Expr.AppendEval(buf[:0], resource)
		if err != nil {
			return fmt.Errorf("search: parameter %s: %w", c.Param.ID, err)
		}
		if err := visit(c, buf); err != nil {
			return err
		}
	}
	return nil
}
