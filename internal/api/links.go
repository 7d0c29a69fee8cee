package api

import (
	"net/http"
	"strings"

	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/records"
)

// linkEscaper percent-encodes, in a link's URL, the characters that
// split RFC 8288 link-values and their parameters (',' ';') and '|',
// which common Link header parsers also trip on. The server decodes them
// back, so the URL means the same.
var linkEscaper = strings.NewReplacer(",", "%2C", ";", "%3B", "|", "%7C", " ", "%20")

// setLinkHeader repeats a Bundle's links (self, first, previous, next)
// as an RFC 8288 Link header, on every page, for loaders and clients that
// page by header rather than by Bundle.link.
func setLinkHeader(w http.ResponseWriter, links []fhir.BundleLink) {
	var parts []string
	for _, l := range links {
		switch l.Relation {
		case "self", "first", "next", "previous", "prev", "last":
			if !strings.ContainsAny(l.URL, "<>\r\n\"") {
				parts = append(parts, "<"+linkEscaper.Replace(l.URL)+`>; rel="`+l.Relation+`"`)
			}
		}
	}
	if len(parts) > 0 {
		w.Header().Set("Link", strings.Join(parts, ", "))
	}
}

// pageLinks adds a search page's previous, next and last links to b,
// each the query of first with the page's cursor. last reads the search
// backward from its end, which costs what the first page does, so it is
// given whenever a next page is.
func pageLinks(b *fhir.Bundle, first string, page *records.Page) error {
	link := func(rel string, c records.Cursor) error {
		if page.TotalMAC != 0 {
			// Counted once, carried from page to page.
			c.Total, c.TotalMAC = page.Total, page.TotalMAC
		}
		enc, err := records.EncodePageCursor(c)
		if err != nil {
			return err
		}
		b.Links = append(b.Links, fhir.BundleLink{Relation: rel, URL: first + sep(first) + "_cursor=" + enc})
		return nil
	}
	if page.Prev != nil {
		if err := link("previous", *page.Prev); err != nil {
			return err
		}
	}
	if page.NextKeys != nil {
		if err := link("next", records.Cursor{Keys: page.NextKeys}); err != nil {
			return err
		}
		if err := link("last", records.Cursor{Before: true}); err != nil {
			return err
		}
	}
	return nil
}

// withTotal gives a Bundle page's total and notes (a total left out as
// too costly) to b: the total as Bundle.total, the notes as an
// OperationOutcome entry.
func withTotal(b *fhir.Bundle, page *records.Page) {
	if page.Total != nil {
		n := int(*page.Total)
		b.Total = &n
	}
	if len(page.Notes) > 0 {
		var issues []fhir.Issue
		for _, n := range page.Notes {
			issues = append(issues, fhir.Issue{Severity: "warning", Code: "too-costly", Diagnostics: n})
		}
		b.Entries = append(b.Entries, fhir.BundleEntry{Resource: fhir.OperationOutcome(issues...), Search: &fhir.BundleSearch{Mode: "outcome"}})
	}
}
