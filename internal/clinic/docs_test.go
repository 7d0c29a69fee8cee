package clinic

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

// docTypes are the types docs/clinic-api.md documents field by field.
var docTypes = []reflect.Type{
	reflect.TypeFor[Patient](), reflect.TypeFor[Address](), reflect.TypeFor[Immunization](), reflect.TypeFor[Reaction](),
	reflect.TypeFor[Document](), reflect.TypeFor[DocumentUpload](), reflect.TypeFor[Consent](), reflect.TypeFor[Attachment](),
	reflect.TypeFor[Revocation](), reflect.TypeFor[PatientQuery](), reflect.TypeFor[ConsentStatus](), reflect.TypeFor[UseStatus](), reflect.TypeFor[AnonymizeRequest](),
	reflect.TypeFor[Problem](), reflect.TypeFor[FieldError](),
}

// fieldTables renders the field tables of the docs from the types' tags.
func fieldTables() string {
	var b strings.Builder
	for _, t := range docTypes {
		b.WriteString("\n#### " + t.Name() + "\n\n| field | type | rules | meaning | FHIR |\n|---|---|---|---|---|\n")
		for _, f := range fieldsOf(t) {
			var rules []string
			if f.req {
				rules = append(rules, "required")
			}
			if f.ro {
				rules = append(rules, "read-only")
			}
			if f.format != "" {
				rules = append(rules, f.format)
			}
			if len(f.enum) > 0 {
				rules = append(rules, "one of "+strings.Join(f.enum, ", "))
			}
			if f.max > 0 {
				rules = append(rules, "max "+itoa(f.max))
			}
			typ := f.typ.Kind().String()
			if f.typ.Kind() == reflect.Pointer || f.typ.Kind() == reflect.Slice || f.typ.Kind() == reflect.Map {
				typ = strings.TrimPrefix(f.typ.String(), "clinic.")
			}
			typ = strings.ReplaceAll(typ, "clinic.", "")
			b.WriteString("| `" + f.name + "` | " + typ + " | " + strings.Join(rules, "; ") + " | " + f.doc + " | " + strings.ReplaceAll(f.fhir, "|", "\\|") + " |\n")
		}
	}
	return b.String()
}

// TestDocsFieldTables keeps docs/clinic-api.md's field tables the ones
// the types generate (WARD_UPDATE_DOCS=1 rewrites them).
func TestDocsFieldTables(t *testing.T) {
	const path = "../../docs/clinic-api.md"
	const begin, end = "<!-- fields:begin -->", "<!-- fields:end -->"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the %s ... %s markers", path, begin, end)
	}
	want := fieldTables()
	if s[i+len(begin):j] != want {
		if os.Getenv("WARD_UPDATE_DOCS") == "1" {
			os.WriteFile(path, []byte(s[:i+len(begin)]+want+s[j:]), 0o644)
			return
		}
		t.Errorf("the field tables of %s differ from the types; run WARD_UPDATE_DOCS=1 go test ./internal/clinic -run TestDocsFieldTables", path)
	}
}
