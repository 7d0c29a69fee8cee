package fhirxml

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"strings"
	"sync"

	"github.com/wardhealth/ward/internal/fhir"
)

//go:generate go run ./internal/gen -out order.txt.gz

// orderGz is generated from the HL7 FHIR R4 StructureDefinitions
// (profiles-resources.json, profiles-types.json); see internal/gen.
//
//go:embed order.txt.gz
var orderGz []byte

// elem is one child element of a part, in StructureDefinition order.
type elem struct {
	name   string
	array  bool     // max != 1: a JSON array, repeated XML elements
	choice bool     // value[x]: one key per type, name + capitalised type
	attr   bool     // an XML attribute (Element.id, Extension.url)
	types  []string // primitive, data type, "Resource", or a backbone part key
	// jsonKeys and extKeys are, per type, the JSON property and its "_"
	// twin (computed once: a choice like Extension.value has 50).
	jsonKeys, extKeys []string
}

// key is what an XML element name or a JSON property resolves to.
type key struct {
	el  *elem
	typ string
}

// part is a resource, a data type, or a backbone element.
type part struct {
	name  string
	elems []elem
	keys  map[string]key // JSON property / XML element name -> element
}

type table struct {
	parts      map[string]*part
	primitives map[string]bool
	resources  map[string]bool
}

var loadTable = sync.OnceValue(func() *table {
	t, err := decodeTable(orderGz)
	if err != nil {
		// Embedded at build time and covered by tests: a failure is a
		// broken build, not a runtime condition.
		panic(err)
	}
	return t
})

func decodeTable(gz []byte) (*table, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, fmt.Errorf("fhirxml: embedded table: %w", err)
	}
	t := &table{parts: map[string]*part{}, primitives: map[string]bool{}, resources: map[string]bool{}}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Split(sc.Text(), "\t")
		switch fields[0] {
		case "fhir":
			if len(fields) != 2 || fields[1] != "4.0.1" {
				return nil, fmt.Errorf("fhirxml: embedded table: not an R4 table")
			}
			continue
		case "primitives":
			for _, f := range fields[1:] {
				t.primitives[f] = true
			}
			continue
		case "resources":
			for _, f := range fields[1:] {
				// The source mixes in a few R5 resources (e.g.
				// SubscriptionStatus): only fhir's R4 types are kept.
				if fhir.IsResourceType(f) {
					t.resources[f] = true
				}
			}
			continue
		}
		p := &part{name: fields[0], elems: make([]elem, 0, len(fields)-1), keys: make(map[string]key, len(fields)-1)}
		for _, f := range fields[1:] {
			name, rest, _ := strings.Cut(f, "/")
			flags, types, ok := strings.Cut(rest, "/")
			if !ok || name == "" || types == "" {
				return nil, fmt.Errorf("fhirxml: embedded table: line %d: bad element", line)
			}
			p.elems = append(p.elems, elem{
				name: name, array: strings.Contains(flags, "a"), choice: strings.Contains(flags, "x"),
				attr: strings.Contains(flags, "@"), types: strings.Split(types, ","),
			})
		}
		for i := range p.elems {
			e := &p.elems[i]
			for _, typ := range e.types {
				k := e.name
				if e.choice {
					k += upperFirst(typ)
				}
				e.jsonKeys = append(e.jsonKeys, k)
				e.extKeys = append(e.extKeys, "_"+k)
			}
			if !e.choice {
				p.keys[e.name] = key{e, e.types[0]}
				continue
			}
			for _, typ := range e.types {
				p.keys[e.name+strings.ToUpper(typ[:1])+typ[1:]] = key{e, typ}
			}
		}
		t.parts[p.name] = p
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("fhirxml: embedded table: %w", err)
	}
	if len(t.resources) == 0 || len(t.primitives) == 0 || t.parts["Element"] == nil || t.parts["Extension"] == nil {
		return nil, fmt.Errorf("fhirxml: embedded table: incomplete")
	}
	for r := range t.resources {
		if t.parts[r] == nil {
			return nil, fmt.Errorf("fhirxml: embedded table: resource %s has no elements", r)
		}
	}
	return t, nil
}

// isPrimitive reports a type carried as a value attribute (xhtml is a
// primitive of its own kind, handled apart).
func (t *table) isPrimitive(typ string) bool { return typ != "xhtml" && t.primitives[typ] }

// jsonKind is how a primitive's value is typed in JSON (json.html):
// booleans and numbers are JSON literals, everything else a string.
func jsonKind(typ string) byte {
	switch typ {
	case "boolean":
		return 'b'
	case "integer", "positiveInt", "unsignedInt":
		return 'i'
	case "decimal":
		return 'd'
	}
	return 's'
}
