package shape

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
)

//go:generate go run ./internal/gen -schema ../schema/fhir.schema.json.gz -out summary.json.gz

// summaryGz is generated from the FHIR R4 StructureDefinitions; provenance
// and licence are in README.md.
//
//go:embed summary.json.gz
var summaryGz []byte

// element is one child element of a resource, backbone element or data type.
type element struct {
	name    string
	summary bool
	min     int
}

// field is what a JSON property name resolves to: for a choice element the
// variant fixes the type, so it is resolved per key, not per element.
type field struct {
	el  *element
	typ string // data type, primitive, or key of a backbone part
}

// part is a resource, a backbone element, a data type or a data type's
// nested element.
type part struct {
	name string
	// datatype marks parts of data types: their values are kept whole in
	// summaries (but for Attachment.data), unlike resource backbones.
	datatype bool
	elems    []element
	keys     map[string]field // JSON property name -> element
}

// lookup resolves a JSON property name. ext reports a primitive's "_name"
// sibling, which holds an Element (id, extension) rather than the value.
func (p *part) lookup(key string) (f field, ext bool, ok bool) {
	if k, isExt := strings.CutPrefix(key, "_"); isExt {
		f, ok = p.keys[k]
		return f, true, ok
	}
	f, ok = p.keys[key]
	return f, false, ok
}

type table struct {
	parts     map[string]*part
	resources map[string]*part
}

var loadTable = sync.OnceValue(func() *table {
	t, err := decodeTable(summaryGz)
	if err != nil {
		// The table is embedded at build time and covered by tests; a
		// failure here is a broken build, not a runtime condition.
		panic(err)
	}
	return t
})

// fileTable mirrors the generator's output (internal/gen.Table).
type fileTable struct {
	FHIRVersion string   `json:"fhirVersion"`
	Resources   []string `json:"resources"`
	Types       map[string][]struct {
		N string   `json:"n"`
		X bool     `json:"x"`
		T []string `json:"t"`
		S bool     `json:"s"`
		M int      `json:"m"`
	} `json:"types"`
}

func decodeTable(gz []byte) (*table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("shape: embedded table: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("shape: embedded table: %w", err)
	}
	var ft fileTable
	if err := json.Unmarshal(raw, &ft); err != nil {
		return nil, fmt.Errorf("shape: embedded table: %w", err)
	}
	if ft.FHIRVersion != "4.0.1" || len(ft.Resources) == 0 {
		return nil, fmt.Errorf("shape: embedded table: not an R4 table")
	}
	t := &table{parts: make(map[string]*part, len(ft.Types)), resources: make(map[string]*part, len(ft.Resources))}
	isResource := make(map[string]bool, len(ft.Resources))
	for _, r := range ft.Resources {
		isResource[r] = true
	}
	for name, elems := range ft.Types {
		root, _, _ := strings.Cut(name, ".")
		p := &part{name: name, datatype: !isResource[root], elems: make([]element, len(elems)), keys: make(map[string]field, len(elems))}
		for i, e := range elems {
			p.elems[i] = element{name: e.N, summary: e.S, min: e.M}
			el := &p.elems[i]
			if !e.X {
				if len(e.T) != 1 {
					return nil, fmt.Errorf("shape: embedded table: %s.%s has %d types", name, e.N, len(e.T))
				}
				p.keys[e.N] = field{el, e.T[0]}
				continue
			}
			for _, typ := range e.T {
				p.keys[e.N+strings.ToUpper(typ[:1])+typ[1:]] = field{el, typ}
			}
		}
		t.parts[name] = p
	}
	for _, r := range ft.Resources {
		p, ok := t.parts[r]
		if !ok {
			return nil, fmt.Errorf("shape: embedded table: no entry for %s", r)
		}
		t.resources[r] = p
	}
	return t, nil
}

// ValidElement reports whether name is a top-level element of resourceType:
// an element name, a choice element's base name ("value", "effective") or
// one of its variants ("valueQuantity"). "resourceType" is not an element.
func ValidElement(resourceType, name string) bool {
	p := loadTable().resources[resourceType]
	if p == nil {
		return false
	}
	if _, ok := p.keys[name]; ok {
		return true
	}
	for _, e := range p.elems {
		if e.name == name {
			return true
		}
	}
	return false
}

// SummaryElements returns the names of the top-level elements of
// resourceType marked isSummary (choice elements by base name, e.g. "value"),
// sorted, or nil for an unknown type. The caller may modify the slice.
func SummaryElements(resourceType string) []string {
	p := loadTable().resources[resourceType]
	if p == nil {
		return nil
	}
	var names []string
	for _, e := range p.elems {
		if e.summary {
			names = append(names, e.name)
		}
	}
	slices.Sort(names)
	return names
}

// ChildType returns the R4 type of the JSON property key of part: a
// resource type, a backbone element's part ("Patient.contact") or a data
// type ("HumanName"). The type is a primitive ("string", "date", ...; the
// table gives ids, Extension.url and Reference.reference as "string"), a
// data type, a backbone part's key, or "Resource" for a nested resource; a
// choice variant ("valueQuantity") resolves to its own type. ok is false
// when key is not an element of part (a "_name" primitive extension is not
// resolved either). Readers that must know every element they copy, such
// as de-identification, are driven by it.
func ChildType(part, key string) (typ string, ok bool) {
	p := loadTable().parts[part]
	if p == nil {
		return "", false
	}
	f, ok := p.keys[key]
	if !ok {
		return "", false
	}
	return f.typ, true
}

// IsResource reports whether name is one of the R4 resource types of the
// table.
func IsResource(name string) bool { return loadTable().resources[name] != nil }
