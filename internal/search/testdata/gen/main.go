// Command gen writes testdata/synthea-sample.ndjson.gz: a sample of the
// Synthea R4 test patients (see ../README.md) shaped as Ward stores
// resources, one resource per line. Run from internal/search:
//
//	go run ./testdata/gen -src /work/shared/synthea-r4
//
// It keeps, per file and resource type, the first few resources, and rewrites
// urn:uuid: references to Type/id as a server does when it loads a
// transaction Bundle. Conditional references (Type?identifier=...) are left
// as they are.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"log"
	"os"
	"path/filepath"
	"strings"
)

var files = []string{
	"00-shared/0-hospitalInformation1625911868739.json",
	"00-shared/0-practitionerInformation1625911868739.json",
	"patients/blaze-2b208315-4cc4-3d52-e597-a03509645859.json",                // deceased
	"patients/blaze-b9590b16-804d-3d9f-0de0-b80b794f1017.json",                // ImagingStudy, Medication*, SupplyDelivery
	"patients/blaze-b3664f86-0ce9-4a2c-ae85-4d390d438512.json",                // AllergyIntolerance
	"patients/smart-Filiberto_Ryan_0c63fb2c-e9ef-4e6a-bb8c-dc84f00a2f3c.json", // Goal, older content
}

func main() {
	src := flag.String("src", "/work/shared/synthea-r4", "Synthea R4 set A")
	out := flag.String("out", "testdata/synthea-sample.ndjson.gz", "output")
	perType := flag.Int("per-type", 6, "resources kept per file and type")
	flag.Parse()
	var buf bytes.Buffer
	n := 0
	for _, f := range files {
		path := filepath.Join(*src, f)
		raw, err := os.ReadFile(path)
		if err != nil {
			log.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		var b struct {
			Entry []struct {
				FullURL  string         `json:"fullUrl"`
				Resource map[string]any `json:"resource"`
			} `json:"entry"`
		}
		if err := dec.Decode(&b); err != nil {
			log.Fatalf("%s: %v", path, err)
		}
		ids := map[string]string{}
		for _, e := range b.Entry {
			if strings.HasPrefix(e.FullURL, "urn:uuid:") {
				ids[e.FullURL] = e.Resource["resourceType"].(string) + "/" + e.Resource["id"].(string)
			}
		}
		count := map[string]int{}
		for _, e := range b.Entry {
			rt := e.Resource["resourceType"].(string)
			if count[rt] >= *perType {
				continue
			}
			count[rt]++
			rewrite(e.Resource, ids)
			line, err := json.Marshal(e.Resource)
			if err != nil {
				log.Fatal(err)
			}
			buf.Write(line)
			buf.WriteByte('\n')
			n++
		}
	}
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	zw.Write(buf.Bytes())
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, gz.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	log.Printf("wrote %s: %d resources, %d bytes, %d gzipped", *out, n, buf.Len(), gz.Len())
}

// rewrite replaces urn:uuid: references that name a resource of the same
// Bundle with Type/id, everywhere in v.
func rewrite(v any, ids map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, c := range v {
			if s, ok := c.(string); ok && k == "reference" {
				if r, ok := ids[s]; ok {
					v[k] = r
				}
				continue
			}
			rewrite(c, ids)
		}
	case []any:
		for _, c := range v {
			rewrite(c, ids)
		}
	}
}
