package records

// The accounting of disclosures as a FHIR Bundle, as CSV and as an HTML
// page: ids, codes and counts from the ledger only, never PHI.

import (
	"encoding/csv"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/fhir"
)

// DisclosuresBundle is the accounting as a Bundle (type collection) of
// the AuditEvents, newest first; base is the FHIR base URL for fullUrl
// ("" for none).
func DisclosuresBundle(base string, ds []Disclosure) ([]byte, error) {
	b := &fhir.Bundle{Type: "collection", Timestamp: time.Now().UTC()}
	for _, d := range ds {
		doc, err := AuditEventJSON(d.Record)
		if err != nil {
			return nil, err
		}
		e := fhir.BundleEntry{Resource: doc}
		if base != "" {
			e.FullURL = base + "/AuditEvent/" + strconv.FormatInt(d.Record.Seq, 10)
		}
		b.Entries = append(b.Entries, e)
	}
	return b.MarshalJSON()
}

// DisclosureColumns are the columns of the CSV and HTML reports.
var DisclosureColumns = []string{"date", "user", "role", "organisation", "action", "resources", "purpose", "emergency", "audit_event"}

func (d Disclosure) row() []string {
	r := d.Record
	emergency := "no"
	if r.Emergency {
		emergency = "yes"
	}
	return []string{r.Time.UTC().Format(time.RFC3339), r.Actor, r.Role, r.Tenant, r.Action, d.TypesText(), r.Purpose, emergency,
		strconv.FormatInt(r.Seq, 10)}
}

// WriteDisclosuresCSV writes the accounting as CSV with a header row.
func WriteDisclosuresCSV(w io.Writer, ds []Disclosure) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(DisclosureColumns); err != nil {
		return err
	}
	for _, d := range ds {
		if err := cw.Write(d.row()); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

var disclosuresPage = template.Must(template.New("disclosures").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Accounting of disclosures</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3em .6em;text-align:left}tr.emergency{background:#fdd}</style>
</head><body>
<h1>Accounting of disclosures</h1>
<p>{{.Patient}}, {{.Start}} to {{.End}}: {{len .Rows}} accesses.</p>
<table><thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead><tbody>
{{range .Rows}}<tr{{if .Emergency}} class="emergency"{{end}}>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody></table>
</body></html>
`))

// WriteDisclosuresHTML writes the accounting as a self-contained HTML page.
func WriteDisclosuresHTML(w io.Writer, patient string, start, end time.Time, ds []Disclosure) error {
	type row struct {
		Emergency bool
		Cells     []string
	}
	data := struct {
		Patient, Start, End string
		Columns             []string
		Rows                []row
	}{Patient: patient, Start: start.UTC().Format(time.RFC3339), End: end.UTC().Format(time.RFC3339), Columns: DisclosureColumns}
	for _, d := range ds {
		data.Rows = append(data.Rows, row{Emergency: d.Record.Emergency, Cells: d.row()})
	}
	if err := disclosuresPage.Execute(w, data); err != nil {
		return fmt.Errorf("render disclosures: %w", err)
	}
	return nil
}

// DisclosureFormat is the report format an Accept header or _format asks
// for: "fhir", "html" or "csv"; "" when it names none of them.
func DisclosureFormat(format, accept string) string {
	for _, v := range []string{format, accept} {
		v = strings.ToLower(v)
		switch {
		case v == "":
			continue
		case v == "html" || strings.Contains(v, "text/html"):
			return "html"
		case v == "csv" || strings.Contains(v, "text/csv"):
			return "csv"
		case v == "json" || v == "fhir" || strings.Contains(v, "json") || strings.Contains(v, "*/*"):
			return "fhir"
		}
		if v == format {
			return ""
		}
	}
	return "fhir"
}
