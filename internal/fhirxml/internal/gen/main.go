// Command gen writes order.txt.gz, the element-order table package fhirxml
// embeds, from the HL7 FHIR R4 (4.0.1) StructureDefinitions.
//
// Usage (from internal/fhirxml, as the go:generate line does):
//
//	go run ./internal/gen -src /work/shared/fhir-r4 -out order.txt.gz
//
// The table is one line per part (a resource, a data type, or a backbone
// element keyed by its path) listing its child elements in
// StructureDefinition order, which is the order R4's XML requires
// (xml.html: "elements must appear in the order defined"):
//
//	Part<TAB>name/flags/type,type<TAB>...
//
// flags: "a" when the element repeats (max != 1, a JSON array), "x" for a
// choice element (name without [x]; one type per variant), "@" for an
// element the XML carries as an attribute (representation xmlAttr: the id
// of elements and Extension.url). Types are primitive names, data types,
// "Resource" (a nested resource), or the key of a backbone part. Two header
// lines name the primitive types and the resource types.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

func main() {
	src := flag.String("src", envOr("FHIR_R4_DIR", "/work/shared/fhir-r4"), "directory holding profiles-resources.json and profiles-types.json")
	out := flag.String("out", "order.txt.gz", "output file")
	flag.Parse()
	txt, err := Generate(*src)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	zw.Write(txt)
	if err := zw.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type sdElement struct {
	Path             string   `json:"path"`
	Max              string   `json:"max"`
	ContentReference string   `json:"contentReference"`
	Representation   []string `json:"representation"`
	Type             []struct {
		Code      string `json:"code"`
		Extension []struct {
			URL      string `json:"url"`
			ValueURL string `json:"valueUrl"`
		} `json:"extension"`
	} `json:"type"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	Name         string `json:"name"`
	Type         string `json:"type"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	Snapshot     struct {
		Element []sdElement `json:"element"`
	} `json:"snapshot"`
}

type bundle struct {
	Entry []struct {
		Resource json.RawMessage `json:"resource"`
	} `json:"entry"`
}

// Generate returns the uncompressed table.
func Generate(src string) ([]byte, error) {
	var sds []structureDefinition
	for _, f := range []string{"profiles-types.json", "profiles-resources.json"} {
		raw, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			return nil, err
		}
		var b bundle
		if err := json.Unmarshal(raw, &b); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil || head.ResourceType != "StructureDefinition" {
				continue
			}
			var sd structureDefinition
			if err := json.Unmarshal(e.Resource, &sd); err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if sd.ResourceType != "StructureDefinition" || sd.Derivation == "constraint" {
				continue
			}
			sds = append(sds, sd)
		}
	}
	var prims, resources []string
	parts := map[string][]string{}
	for _, sd := range sds {
		switch sd.Kind {
		case "primitive-type":
			prims = append(prims, sd.Type)
			continue
		case "resource":
			if !sd.Abstract {
				resources = append(resources, sd.Type)
			}
		case "complex-type":
		default:
			continue
		}
		for _, el := range sd.Snapshot.Element {
			parent, name, ok := cut(el.Path)
			if !ok {
				continue
			}
			flags := ""
			if el.Max != "1" && el.Max != "0" {
				flags += "a"
			}
			choice := strings.HasSuffix(name, "[x]")
			if choice {
				name = strings.TrimSuffix(name, "[x]")
				flags += "x"
			}
			for _, r := range el.Representation {
				if r == "xmlAttr" {
					flags += "@"
				}
			}
			var types []string
			switch {
			case el.ContentReference != "":
				ref := el.ContentReference
				if i := strings.Index(ref, "#"); i >= 0 {
					ref = ref[i+1:]
				}
				types = []string{ref}
			default:
				for _, t := range el.Type {
					code := t.Code
					if strings.HasPrefix(code, "http://hl7.org/fhirpath/System.") {
						code = "string"
						for _, x := range t.Extension {
							if strings.HasSuffix(x.URL, "structuredefinition-fhir-type") && x.ValueURL != "" {
								code = x.ValueURL
							}
						}
					}
					if code == "BackboneElement" || code == "Element" {
						code = el.Path
					}
					types = append(types, code)
				}
			}
			if len(types) == 0 {
				return nil, fmt.Errorf("%s: no type", el.Path)
			}
			if !choice && len(types) != 1 {
				return nil, fmt.Errorf("%s: %d types but not a choice", el.Path, len(types))
			}
			parts[parent] = append(parts[parent], name+"/"+flags+"/"+strings.Join(types, ","))
		}
	}
	sort.Strings(prims)
	sort.Strings(resources)
	keys := make([]string, 0, len(parts))
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b bytes.Buffer
	b.WriteString("fhir\t4.0.1\n")
	b.WriteString("primitives\t" + strings.Join(prims, "\t") + "\n")
	b.WriteString("resources\t" + strings.Join(resources, "\t") + "\n")
	for _, k := range keys {
		b.WriteString(k + "\t" + strings.Join(parts[k], "\t") + "\n")
	}
	return b.Bytes(), nil
}

// cut splits "A.b.c" into its parent "A.b" and name "c".
func cut(path string) (parent, name string, ok bool) {
	i := strings.LastIndexByte(path, '.')
	if i < 0 {
		return "", "", false
	}
	return path[:i], path[i+1:], true
}
