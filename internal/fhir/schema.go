package fhir

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

// schemaGz is the official FHIR R4 (4.0.1) JSON schema, gzip-compressed.
// Provenance and licence are in schema/README.md.
//
//go:embed schema/fhir.schema.json.gz
var schemaGz []byte

// schemaURL names the embedded schema inside the jsonschema compiler. It is
// never fetched: the document is added to the compiler as a resource.
const schemaURL = "https://schema.ward.invalid/fhir-r4-4.0.1.schema.json"

// schemaBytes returns the decompressed schema. It is not cached: the 2.8 MB
// document is needed twice at most (resource types, validator compile).
func schemaBytes() ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(schemaGz))
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	return b, nil
}

// typeTable is derived once from the embedded schema's discriminator mapping.
type typeTable struct {
	names []string            // sorted
	set   map[string]struct{} // same names
}

var resourceTypeTable = sync.OnceValue(func() typeTable {
	t, err := loadTypeTable()
	if err != nil {
		// The schema is embedded at build time and covered by tests; a
		// failure here is a broken build, not a runtime condition.
		panic(err)
	}
	return t
})

func loadTypeTable() (typeTable, error) {
	b, err := schemaBytes()
	if err != nil {
		return typeTable{}, err
	}
	var s struct {
		Discriminator struct {
			PropertyName string            `json:"propertyName"`
			Mapping      map[string]string `json:"mapping"`
		} `json:"discriminator"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return typeTable{}, fmt.Errorf("fhir: embedded schema: %w", err)
	}
	if s.Discriminator.PropertyName != "resourceType" || len(s.Discriminator.Mapping) == 0 {
		return typeTable{}, fmt.Errorf("fhir: embedded schema: no resourceType discriminator")
	}
	t := typeTable{set: make(map[string]struct{}, len(s.Discriminator.Mapping))}
	for name, ref := range s.Discriminator.Mapping {
		if ref != "#/definitions/"+name || !IsElementName(name) {
			return typeTable{}, fmt.Errorf("fhir: embedded schema: unexpected discriminator entry %q -> %q", name, ref)
		}
		t.names = append(t.names, name)
		t.set[name] = struct{}{}
	}
	slices.Sort(t.names)
	return t, nil
}

// ResourceTypes returns the names of the 146 FHIR R4 resource types, sorted.
// The list is derived from the embedded schema on first use; the caller may
// modify the returned slice.
func ResourceTypes() []string {
	return slices.Clone(resourceTypeTable().names)
}

// IsResourceType reports whether name is an R4 resource type (case-sensitive).
func IsResourceType(name string) bool {
	_, ok := resourceTypeTable().set[name]
	return ok
}

// IsElementName reports whether s is safe to echo in a message: it looks like
// a FHIR element or type name (^[A-Za-z_][A-Za-z0-9_]{0,63}$). Anything else
// read from a request might carry PHI and is never quoted.
func IsElementName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c == '_':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// primitiveName returns the FHIR primitive type a schema location refers to,
// e.g. "code" for ".../schema.json#/definitions/code", or "" when the
// location is not a primitive definition (primitive names start lower-case).
func primitiveName(schemaLoc string) string {
	const p = "#/definitions/"
	i := strings.Index(schemaLoc, p)
	if i < 0 {
		return ""
	}
	name := schemaLoc[i+len(p):]
	if j := strings.IndexByte(name, '/'); j >= 0 {
		// A keyword location inside the primitive's definition, e.g.
		// "date/pattern", still names the primitive.
		if name[j:] != "/pattern" {
			return ""
		}
		name = name[:j]
	}
	if !IsElementName(name) || name[0] < 'a' || name[0] > 'z' {
		return ""
	}
	return name
}
