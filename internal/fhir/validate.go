package fhir

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"github.com/wardhealth/ward/internal/problem"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Issue severities (FHIR issue-severity codes).
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// Issue is one finding about a resource, shaped like an OperationOutcome
// issue. It is declared in problem, which carries issues across layers
// without depending on FHIR parsing.
type Issue = problem.Issue

// IssueFrom returns an error-severity Issue.
func IssueFrom(code, expression, diagnostics string) Issue {
	return Issue{Severity: SeverityError, Code: code, Expression: expression, Diagnostics: diagnostics}
}

// Validator checks resources against the embedded R4 schema. It is safe for
// concurrent use. Build it with NewValidator; the zero value rejects every
// resource as not supported.
type Validator struct {
	schemas map[string]*jsonschema.Schema // by resource type; read-only after construction
}

// compiledSchemas compiles the definition of every resource type once per
// process. Every resource that can hold contained resources reaches every
// other type through them, so compiling one type costs about as much as
// compiling all (measured: ~370 ms for Patient first, ~26 ms for the other
// 145 after it); per-type laziness would buy nothing.
var compiledSchemas = sync.OnceValues(compileSchemas)

// NewValidator returns a Validator. The first call in a process compiles the
// schema (about half a second); later calls share the result.
func NewValidator() (*Validator, error) {
	m, err := compiledSchemas()
	if err != nil {
		return nil, err
	}
	return &Validator{schemas: m}, nil
}

func compileSchemas() (map[string]*jsonschema.Schema, error) {
	b, err := schemaBytes()
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	if err := deriveSchema(doc); err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	types := resourceTypeTable().names
	m := make(map[string]*jsonschema.Schema, len(types))
	for _, t := range types {
		s, err := c.Compile(schemaURL + "#/definitions/" + t)
		if err != nil {
			return nil, fmt.Errorf("fhir: compile schema for %s: %w", t, err)
		}
		m[t] = s
	}
	return m, nil
}

// deriveSchema applies, in memory, the changes described in the package doc
// and schema/README.md:
//
//  1. every definition with properties (complex types, backbone elements,
//     resources) gets "type": "object", and xhtml gets "type": "string" --
//     the HL7 schema leaves them untyped, so "name": ["x"] would pass;
//  2. ResourceList (contained resources, Bundle.entry.resource,
//     Parameters.parameter.resource) becomes a dispatch on resourceType
//     (draft-07 if/then) instead of a 146-way oneOf, which validated every
//     candidate type in full and produced a wall of unrelated errors.
//
// The schema is declared draft-07 for if/then; nothing else in it reads
// differently under draft-07 than under draft-06.
func deriveSchema(doc any) error {
	root, ok := doc.(map[string]any)
	if !ok {
		return errors.New("fhir: embedded schema: not an object")
	}
	defs, ok := root["definitions"].(map[string]any)
	if !ok {
		return errors.New("fhir: embedded schema: no definitions")
	}
	root["$schema"] = "http://json-schema.org/draft-07/schema#"
	for _, d := range defs {
		d, ok := d.(map[string]any)
		if !ok {
			continue
		}
		if _, ok := d["properties"]; ok {
			if _, typed := d["type"]; !typed {
				d["type"] = "object"
			}
		}
	}
	if x, ok := defs["xhtml"].(map[string]any); ok {
		if _, typed := x["type"]; !typed {
			x["type"] = "string"
		}
	}

	types := resourceTypeTable().names
	rl, ok := defs["ResourceList"].(map[string]any)
	if !ok {
		return errors.New("fhir: embedded schema: no ResourceList")
	}
	one, _ := rl["oneOf"].([]any)
	if len(one) != len(types) {
		return fmt.Errorf("fhir: embedded schema: ResourceList has %d types, discriminator %d", len(one), len(types))
	}
	enum := make([]any, len(types))
	branches := make([]any, len(types))
	for i, t := range types {
		if _, ok := defs[t]; !ok {
			return fmt.Errorf("fhir: embedded schema: no definition for %s", t)
		}
		enum[i] = t
		branches[i] = map[string]any{
			// "required" matters: without it an object lacking
			// resourceType would satisfy every "if".
			"if": map[string]any{
				"required":   []any{"resourceType"},
				"properties": map[string]any{"resourceType": map[string]any{"const": t}},
			},
			"then": map[string]any{"$ref": "#/definitions/" + t},
		}
	}
	defs["ResourceList"] = map[string]any{
		"type":       "object",
		"required":   []any{"resourceType"},
		"properties": map[string]any{"resourceType": map[string]any{"enum": enum}},
		"allOf":      branches,
	}
	return nil
}

// Validate checks r against the schema definition of r.Type and returns the
// issues found, sorted by expression, code and diagnostics; nil means valid.
func (v *Validator) Validate(r *Resource) []Issue {
	if r == nil || r.Doc == nil {
		return []Issue{IssueFrom("structure", "", "no resource")}
	}
	s, ok := v.schemas[r.Type]
	if !ok {
		return []Issue{IssueFrom("not-supported", "", "unknown resource type")}
	}
	err := s.Validate(r.Doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Issue{IssueFrom("exception", r.Type, "validation failed")}
	}
	c := collector{root: r.Type, doc: r.Doc}
	c.walk(ve)
	return sortIssues(c.issues)
}

func sortIssues(issues []Issue) []Issue {
	slices.SortFunc(issues, func(a, b Issue) int {
		return cmp.Or(
			strings.Compare(a.Expression, b.Expression),
			strings.Compare(a.Code, b.Code),
			strings.Compare(a.Diagnostics, b.Diagnostics),
			strings.Compare(a.Severity, b.Severity),
		)
	})
	return slices.Compact(issues)
}

// collector flattens a jsonschema error tree into Issues.
type collector struct {
	root   string
	doc    any
	issues []Issue
}

func (c *collector) walk(e *jsonschema.ValidationError) {
	if len(e.Causes) > 0 {
		if _, ok := e.ErrorKind.(*kind.OneOf); ok {
			// Not reachable with the derived schema (its one oneOf is the
			// unused root); summarise rather than list every alternative.
			c.add(e, "structure", "value does not match any allowed alternative")
			return
		}
		for _, cause := range e.Causes {
			c.walk(cause)
		}
		return
	}
	c.leaf(e)
}

func (c *collector) add(e *jsonschema.ValidationError, code, diag string) {
	c.issues = append(c.issues, IssueFrom(code, c.expression(e.InstanceLocation), diag))
}

func (c *collector) leaf(e *jsonschema.ValidationError) {
	switch k := e.ErrorKind.(type) {
	case *kind.Required:
		base := c.expression(e.InstanceLocation)
		for _, name := range k.Missing {
			if IsElementName(name) { // names come from the schema; checked anyway
				c.issues = append(c.issues, IssueFrom("required", base+"."+name, "missing required element '"+name+"'"))
			} else {
				c.issues = append(c.issues, IssueFrom("required", base, "missing required element"))
			}
		}
	case *kind.AdditionalProperties:
		base := c.expression(e.InstanceLocation)
		for _, name := range k.Properties {
			if IsElementName(name) {
				c.issues = append(c.issues, IssueFrom("structure", base+"."+name, "unknown element '"+name+"'"))
			} else {
				c.issues = append(c.issues, IssueFrom("structure", base, "unknown element"))
			}
		}
	case *kind.Type:
		c.add(e, "structure", "expected "+strings.Join(k.Want, " or ")+" but got "+k.Got)
	case *kind.Enum:
		c.add(e, "value", enumMessage(e.InstanceLocation, k.Want))
	case *kind.Const:
		if s, ok := k.Want.(string); ok && IsElementName(s) {
			c.add(e, "value", "value must be '"+s+"'")
		} else {
			c.add(e, "value", "value is not the required constant")
		}
	case *kind.Pattern:
		if p := primitiveName(e.SchemaURL); p != "" {
			c.add(e, "value", "value does not match the FHIR "+p+" format")
		} else {
			c.add(e, "value", "value does not match the required format")
		}
	case *kind.FalseSchema:
		c.add(e, "structure", "element is not allowed")
	case *kind.OneOf:
		c.add(e, "structure", "value matches more than one allowed alternative")
	case *kind.InvalidJsonValue:
		c.add(e, "exception", "value of an unsupported Go type")
	default:
		// Keywords this schema does not use; name the keyword only, since
		// the library's own message may quote the value.
		c.add(e, "invalid", "value fails schema keyword '"+strings.Join(k.KeywordPath(), "/")+"'")
	}
}

// maxListedCodes is how many allowed codes an enum message lists.
const maxListedCodes = 20

func enumMessage(loc []string, want []any) string {
	if len(loc) > 0 && loc[len(loc)-1] == "resourceType" {
		return "value is not a known resource type"
	}
	if len(want) > maxListedCodes {
		return "value is not one of the " + strconv.Itoa(len(want)) + " allowed codes"
	}
	var b strings.Builder
	b.WriteString("value is not one of the allowed codes: ")
	for i, w := range want {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprint(&b, w) // schema values, not input
	}
	return b.String()
}

// expression renders an instance location such as ["name","0","given","1"]
// as "Patient.name[0].given[1]", walking the document to tell array indexes
// from keys. It stops at the first token it cannot account for, so it never
// emits text that is not a schema element name or an index.
func (c *collector) expression(loc []string) string {
	if len(loc) == 0 {
		return c.root
	}
	b := make([]byte, 0, len(c.root)+16*len(loc))
	b = append(b, c.root...)
	cur := c.doc
	for _, tok := range loc {
		switch v := cur.(type) {
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return string(b)
			}
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(i), 10)
			b = append(b, ']')
			cur = v[i]
		case map[string]any:
			if !IsElementName(tok) {
				return string(b)
			}
			b = append(b, '.')
			b = append(b, tok...)
			cur = v[tok]
		default:
			return string(b)
		}
	}
	return string(b)
}
