package api_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
)

// conformanceRow is one row of a table of docs/conformance.md.
type conformanceRow struct {
	item, kind, status, check string
}

// readConformance parses the tables of docs/conformance.md: cells split at
// '|' not escaped as '\|'.
func readConformance(t *testing.T) []conformanceRow {
	t.Helper()
	raw, err := os.ReadFile("../../docs/conformance.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []conformanceRow
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| item ") {
			continue
		}
		var cells []string
		cur := ""
		for i := 1; i < len(line); i++ {
			switch {
			case line[i] == '\\' && i+1 < len(line) && line[i+1] == '|':
				cur += "|"
				i++
			case line[i] == '|':
				cells = append(cells, strings.TrimSpace(cur))
				cur = ""
			default:
				cur += string(line[i])
			}
		}
		if len(cells) != 5 {
			t.Fatalf("conformance row with %d cells: %s", len(cells), line)
		}
		rows = append(rows, conformanceRow{item: strings.Trim(cells[0], "`"), kind: cells[1], status: cells[2], check: strings.Trim(cells[3], "`")})
	}
	return rows
}

// The conformance table says what the CapabilityStatement declares, and
// each row's example request gets the answer its status promises.
func TestConformanceTable(t *testing.T) {
	rows := readConformance(t)
	if len(rows) < 80 {
		t.Fatalf("only %d rows in docs/conformance.md", len(rows))
	}
	w := apptest.Start(t, apptest.SQLite)
	admin := w.Tokens[authz.RoleAdmin]
	pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","gender":"female"}`)
	md := w.Do(t, "GET", "/fhir/metadata", "", nil).JSON(t)
	rest := md["rest"].([]any)[0].(map[string]any)
	codes := func(list any) []string {
		var out []string
		for _, x := range list.([]any) {
			m := x.(map[string]any)
			if c, ok := m["code"].(string); ok {
				out = append(out, c)
			} else {
				out = append(out, m["name"].(string))
			}
		}
		return out
	}
	var patient map[string]any
	for _, x := range rest["resource"].([]any) {
		if m := x.(map[string]any); m["type"] == "Patient" {
			patient = m
		}
	}
	declared := map[string][]string{
		"interaction": codes(patient["interaction"]),
		"system":      codes(rest["interaction"]),
		"param":       codes(patient["searchParam"]),
		"operation":   codes(patient["operation"]),
	}
	seen := map[string]bool{}
	for _, r := range rows {
		if seen[r.item] {
			t.Errorf("%s: two rows", r.item)
		}
		seen[r.item] = true
		if !slices.Contains([]string{"supported", "not supported", "policy"}, r.status) {
			t.Errorf("%s: status %q", r.item, r.status)
		}
		if list, ok := declared[r.kind]; ok {
			if in := slices.Contains(list, r.item); in != (r.status != "not supported") {
				t.Errorf("%s (%s): table says %s, CapabilityStatement declares it: %v", r.item, r.kind, r.status, in)
			}
		}
		if r.check == "" {
			continue
		}
		method, path, ok := strings.Cut(r.check, " ")
		if !ok {
			t.Errorf("%s: check %q is not METHOD path", r.item, r.check)
			continue
		}
		path = "/fhir/" + strings.ReplaceAll(path, "{pid}", pid)
		path = strings.ReplaceAll(path, "|", "%7C")
		resp := w.Do(t, method, path, admin, nil, "Prefer: handling=strict")
		if got := resp.Status < 400; got != (r.status != "not supported") {
			t.Errorf("%s: %s %s answered %d, the table says %s: %.200s", r.item, method, path, resp.Status, r.status, resp.Body)
		}
	}
	// Every interaction the CapabilityStatement declares has its row.
	for kind, list := range declared {
		if kind == "param" {
			continue
		}
		for _, c := range list {
			if !seen[c] {
				t.Errorf("CapabilityStatement declares %s %q; docs/conformance.md has no row", kind, c)
			}
		}
	}
}
