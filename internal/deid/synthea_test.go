package deid

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir/shape"
)

// loadBundle reads a Synthea transaction Bundle and returns its resources
// as Ward stores them: each urn:uuid: reference rewritten to Type/id (what
// the transaction does), each resource given its fullUrl's id.
func loadBundle(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var b struct {
		Entry []struct {
			FullURL  string         `json:"fullUrl"`
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.NewDecoder(zr).Decode(&b); err != nil {
		t.Fatal(err)
	}
	local := map[string]string{}
	var out []map[string]any
	for _, e := range b.Entry {
		typ, _ := e.Resource["resourceType"].(string)
		id, ok := strings.CutPrefix(e.FullURL, "urn:uuid:")
		if !ok {
			id, _ = e.Resource["id"].(string)
		}
		e.Resource["id"] = id
		local[e.FullURL] = typ + "/" + id
		out = append(out, e.Resource)
	}
	var rewrite func(v any)
	rewrite = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				if s, ok := y.(string); ok && k == "reference" && local[s] != "" {
					x[k] = local[s]
				}
				rewrite(y)
			}
		case []any:
			for _, y := range x {
				rewrite(y)
			}
		}
	}
	for _, r := range out {
		rewrite(r)
	}
	return out
}

// plantedIn collects, from the input alone, every value Safe Harbor asks
// to remove: names, telecom, identifier values, street, city and full
// ZIP, reference displays, free text, resource ids and every full date.
func plantedIn(res []map[string]any) map[string]bool {
	found := map[string]bool{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		if len(s) >= 4 {
			found[s] = true
		}
	}
	date := regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, y := range x {
				walk(k, y)
			}
		case []any:
			for _, y := range x {
				walk(key, y)
			}
		case string:
			for _, d := range date.FindAllString(x, -1) {
				found[d] = true
			}
			switch key {
			case "family", "given", "prefix", "suffix", "line", "city", "district", "postalCode", "value",
				"display", "text", "div", "valueString", "description", "title", "lotNumber", "serialNumber":
				add(x)
			}
		}
	}
	for _, r := range res {
		found[r["id"].(string)] = true
		walk("", r)
	}
	// Codes, their systems and resource types are kept, and a few of the
	// collected texts are also codes ("generated") or type names.
	for k := range found {
		if strings.HasPrefix(k, "http") || shape.IsResource(k) || regexp.MustCompile(`^[a-z-]+$`).MatchString(k) || regexp.MustCompile(`^[0-9.]+$`).MatchString(k) {
			delete(found, k)
		}
	}
	return found
}

var pseudonymRE = regexp.MustCompile(`[0-9a-f]{32}`)

// TestSyntheaBundles de-identifies every resource of a few Synthea
// patients and checks the output structurally against the Safe Harbor list
// (no names, telecom, identifiers, narrative, notes, displays; dates are
// years; ZIP codes three digits; ids and references pseudonyms) and by a
// grep for every identifying value collected from the input.
func TestSyntheaBundles(t *testing.T) {
	files, _ := filepath.Glob("testdata/synthea/*.json.gz")
	if len(files) < 3 {
		t.Fatalf("want at least 3 Synthea bundles, found %d", len(files))
	}
	d := must(t, Options{ProjectKey: []byte("project-key-0123456789"), Now: now})
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			in := loadBundle(t, f)
			planted := plantedIn(in)
			if len(planted) < 50 {
				t.Fatalf("only %d identifying values collected: the grep would prove little", len(planted))
			}
			var patient string
			for _, r := range in {
				if r["resourceType"] == "Patient" {
					patient = r["id"].(string)
				}
			}
			var all strings.Builder
			types := map[string]bool{}
			for _, r := range in {
				out, err := d.Resource(r, patient)
				if err != nil {
					t.Fatalf("%s: %v", r["resourceType"], err)
				}
				types[out["resourceType"].(string)] = true
				checkSafeHarbor(t, out["resourceType"].(string), "", out)
				b, _ := json.Marshal(out)
				all.Write(b)
				all.WriteByte('\n')
			}
			if len(types) < 8 {
				t.Errorf("only %d resource types covered", len(types))
			}
			text := pseudonymRE.ReplaceAllString(all.String(), "#")
			for p := range planted {
				if strings.Contains(text, p) {
					t.Errorf("planted value %q found in the output", p)
				}
			}
		})
	}
}

var (
	yearRE = regexp.MustCompile(`^\d{4}$`)
	refRE  = regexp.MustCompile(`^[A-Z][A-Za-z]+/[0-9a-f]{32}$`)
	zip3RE = regexp.MustCompile(`^\d{3}$`)
	dateRE = regexp.MustCompile(`^\d{4}-\d{2}`)
)

// forbidden are the JSON names that, wherever they occur, would carry a
// Safe Harbor identifier or free text.
var forbidden = map[string]string{
	"identifier": "(H-K,M,R) identifiers", "name": "(A) names", "telecom": "(D-F) telephone, fax, e-mail",
	"line": "(B) street", "city": "(B) city", "district": "(B) county", "text": "(R) narrative or free text",
	"note": "(R) free text", "display": "(R) free text", "photo": "(Q) photos", "data": "(P,Q) content",
	"meta": "versions and sources", "contained": "unwalked resources", "lotNumber": "(M) device ids",
	"serialNumber": "(M) device ids", "description": "(R) free text", "valueString": "(R) free text",
	"div": "(R) narrative", "fullUrl": "(N) URLs", "title": "(R) free text",
}

func checkSafeHarbor(t *testing.T, rt, path string, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		for k, y := range x {
			p := path + "." + k
			if why, bad := forbidden[k]; bad && !(k == "valueString" && x["url"] == AgeGroupURL) {
				t.Errorf("%s%s kept: %s", rt, p, why)
			}
			if s, ok := y.(string); ok {
				switch {
				case k == "id" && path == "":
					if !pseudonymRE.MatchString(s) || len(s) != 32 {
						t.Errorf("%s.id is not a pseudonym", rt)
					}
				case k == "reference":
					if !refRE.MatchString(s) {
						t.Errorf("%s%s is not a pseudonymous reference", rt, p)
					}
				case k == "postalCode":
					if !zip3RE.MatchString(s) {
						t.Errorf("%s%s is not three digits", rt, p)
					}
				case k == "url" && x["url"] != nil && len(x) == 1:
					t.Errorf("%s%s: an extension with a URL only", rt, p)
				case dateRE.MatchString(s):
					t.Errorf("%s%s is a date finer than the year", rt, p)
				}
			}
			checkSafeHarbor(t, rt, p, y)
		}
	case []any:
		for _, y := range x {
			checkSafeHarbor(t, rt, path, y)
		}
	case string:
		if path != "" && yearRE.MatchString(x) {
			return
		}
	}
}
