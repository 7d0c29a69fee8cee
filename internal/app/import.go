package app

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// Importer is the operator's bulk load (`ward import`) into one tenant.
type Importer struct {
	repo *records.Repo
	lim  config.Limits
}

// Importer returns the bulk load into tenant, each Bundle file parsed
// within lim.
func (a *App) Importer(tenant string, lim config.Limits) *Importer {
	repo := a.Records.For(authz.Subject{Tenant: tenant, ID: "cli-import", Role: authz.RoleAdmin, Scopes: []string{authn.DefaultScope},
		Clearances: authz.ClearanceLabels()}, "import-"+time.Now().UTC().Format("20060102T150405"))
	return &Importer{repo: repo, lim: lim}
}

// File loads one file and returns how many resources it stored.
// A Bundle file is parsed within the limits of a request (array items,
// elements, Bundle entries), so that a file the server would refuse is
// refused here too, before any of it is stored.
func (im *Importer) File(ctx context.Context, path string) (int, error) {
	repo, lim := im.repo, im.lim
	if strings.HasSuffix(path, ".ndjson") {
		return importNDJSON(ctx, repo, path)
	}
	body, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	res, err := fhir.ParseLimited(body, fhir.Limits{ArrayItems: lim.ArrayItems, Elements: lim.Elements, BundleEntries: lim.BundleEntries})
	if err != nil {
		return 0, err
	}
	if res.Type != "Bundle" {
		if _, err := repo.Create(ctx, res); err != nil {
			return 0, err
		}
		return 1, nil
	}
	kind, _ := res.Doc["type"].(string)
	raw, _ := res.Doc["entry"].([]any)
	entries := make([]records.Entry, 0, len(raw))
	for i, r := range raw {
		e, err := records.ParseEntry(i, r)
		if err != nil {
			return 0, err
		}
		entries = append(entries, e)
	}
	switch kind {
	case "transaction":
		results, err := repo.Transaction(ctx, entries)
		if err != nil {
			return 0, err
		}
		return stored(results), nil
	case "batch":
		results := repo.Batch(ctx, entries)
		var errs []string
		for i, r := range results {
			if r.Err != nil {
				errs = append(errs, fmt.Sprintf("Bundle.entry[%d]: %v", i, r.Err))
			}
		}
		if len(errs) > 0 {
			return stored(results), fmt.Errorf("%d of %d batch entries failed; first: %s", len(errs), len(results), errs[0])
		}
		return stored(results), nil
	}
	return 0, fmt.Errorf("a Bundle of type %q cannot be imported (transaction or batch)", kind)
}

func stored(results []records.EntryResult) int { return records.StoredCount(results) }

// importNDJSON loads one resource per line, keeping ids, through the
// same streaming core as POST /fhir/$import (records.ImportNDJSON): the
// good lines are stored, the bad ones named by line number.
func importNDJSON(ctx context.Context, repo *records.Repo, path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	rep, err := repo.ImportNDJSON(ctx, f, nil)
	if err != nil {
		return rep.Stored, err
	}
	if rep.Failed > 0 {
		var lines []string
		for _, lf := range rep.Failures[:min(len(rep.Failures), 5)] {
			lines = append(lines, fmt.Sprintf("line %d: %v", lf.Line, lf.Err))
		}
		more := ""
		if rep.Failed > len(lines) {
			more = fmt.Sprintf("; and %d more", rep.Failed-len(lines))
		}
		return rep.Stored, fmt.Errorf("%d of %d lines failed (the others were stored): %s%s", rep.Failed, rep.Lines, strings.Join(lines, "; "), more)
	}
	return rep.Stored, nil
}
