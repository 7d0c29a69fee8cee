package fhirxml

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/fhir"
)

func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return v
}

func readFixture(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if b, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// repoResources finds every FHIR resource in the repository's testdata
// (JSON files holding a resource, or an array of them), so that a new
// fixture anywhere is round-tripped too.
func repoResources(t *testing.T) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || d.Name() == "fuzz" || d.Name() == ".git") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.Contains(path, "testdata") || !(strings.HasSuffix(path, ".json") || strings.HasSuffix(path, ".json.gz")) {
			return nil
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(readFixture(t, path)))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return nil
		}
		add := func(name string, x any) {
			m, ok := x.(map[string]any)
			if _, isRes := m["resourceType"].(string); ok && isRes {
				out[name] = m
			}
		}
		switch x := v.(type) {
		case map[string]any:
			add(path, x)
		case []any:
			for i, e := range x {
				add(path+"#"+strconv.Itoa(i), e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestRoundTripRepoResources(t *testing.T) {
	res := repoResources(t)
	if len(res) < 10 {
		t.Fatalf("found %d resources in the repository's testdata; the walk is broken", len(res))
	}
	types := map[string]bool{}
	for name, doc := range res {
		types[doc["resourceType"].(string)] = true
		t.Run(name, func(t *testing.T) {
			x, err := AppendXML(nil, doc)
			if err != nil {
				t.Fatalf("to XML: %v", err)
			}
			back, err := Decode(x, fhir.Limits{})
			if err != nil {
				t.Fatalf("to JSON: %v\n%s", err, x)
			}
			if !reflect.DeepEqual(back, doc) {
				j, _ := json.Marshal(back)
				t.Fatalf("round trip differs\nXML: %s\nback: %s", x, j)
			}
		})
	}
	for _, want := range []string{"Patient", "Observation", "Bundle"} {
		if !types[want] {
			t.Errorf("no %s among the fixtures", want)
		}
	}
}
