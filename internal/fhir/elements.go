package fhir

import (
	"encoding/json"
	"strings"
	"sync"
)

// elementTable is, per schema definition, each property's cardinality and
// type, derived once from the embedded JSON schema.
type elementProp struct {
	list bool
	ref  string // definition name of the property's type
}

var elementTable = sync.OnceValue(func() map[string]map[string]elementProp {
	b, err := schemaBytes()
	if err != nil {
		panic(err) // embedded at build time; covered by tests
	}
	var s struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				Type  string `json:"type"`
				Ref   string `json:"$ref"`
				Items struct {
					Ref string `json:"$ref"`
				} `json:"items"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		panic(err)
	}
	out := make(map[string]map[string]elementProp, len(s.Definitions))
	for name, d := range s.Definitions {
		props := make(map[string]elementProp, len(d.Properties))
		for p, v := range d.Properties {
			ref := v.Ref
			if v.Type == "array" {
				ref = v.Items.Ref
			}
			props[p] = elementProp{list: v.Type == "array", ref: strings.TrimPrefix(ref, "#/definitions/")}
		}
		out[name] = props
	}
	return out
})

// ElementIsList reports whether the element reached from resource type typ
// through the element names in path (e.g. Patient, [contact telecom]) is
// repeating (0..*). known is false when the path does not name an element
// of the R4 definitions.
func ElementIsList(typ string, path []string) (list, known bool) {
	t := elementTable()
	def := typ
	var p elementProp
	for _, name := range path {
		props, ok := t[def]
		if !ok {
			return false, false
		}
		if p, ok = props[name]; !ok {
			return false, false
		}
		def = p.ref
	}
	return p.list, len(path) > 0
}
