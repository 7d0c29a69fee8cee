package app

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/records"
)

// cliOfficer is the subject of the ledger commands: the operator, with
// the database in hand, reads as a privacy officer of the tenant; the
// ledger records it as actor "cli".
func cliOfficer(cfg config.Config) authz.Subject {
	return authz.Subject{Tenant: cfg.Tenant, ID: "cli", Role: authz.RolePrivacyOfficer}
}

// writeDisclosures writes ds in format (fhir, html or csv).
func writeDisclosures(w io.Writer, format, subject string, start, end time.Time, ds []records.Disclosure) error {
	switch format {
	case "", "fhir", "json":
		b, err := records.DisclosuresBundle("", ds)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case "html":
		return records.WriteDisclosuresHTML(w, subject, start, end, ds)
	case "csv":
		return records.WriteDisclosuresCSV(w, ds)
	}
	return fmt.Errorf("--format must be fhir, html or csv")
}

// period fills a zero end with now and a zero start with six years
// before end.
func period(start, end time.Time) (time.Time, time.Time) {
	if end.IsZero() {
		end = time.Now().UTC()
	}
	if start.IsZero() {
		start = end.Add(-records.DefaultDisclosurePeriod)
	}
	return start, end
}

// Disclosures writes the accounting of disclosures of patient in [start,
// end) (zero: the last six years) to w as fhir, html or csv. Reading it
// is recorded in the ledger.
func Disclosures(ctx context.Context, cfg config.Config, patient string, start, end time.Time, format string, w io.Writer) error {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	start, end = period(start, end)
	ds, err := records.NewLedgerView(st, cliOfficer(cfg), "cli").Disclosures(ctx, patient, start, end)
	if err != nil {
		return err
	}
	return writeDisclosures(w, format, "Patient/"+patient, start, end, ds)
}

// UserAccess writes one user's activity in [start, end) (information
// system activity review) to w as fhir, html or csv; recorded in the
// ledger.
func UserAccess(ctx context.Context, cfg config.Config, user string, start, end time.Time, format string, w io.Writer) error {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	start, end = period(start, end)
	ds, err := records.NewLedgerView(st, cliOfficer(cfg), "cli").Access(ctx, user, start, end)
	if err != nil {
		return err
	}
	return writeDisclosures(w, format, "user "+user, start, end, ds)
}

// WithholdAuditEvent marks the AuditEvent (ledger seq) id as withheld
// from the patient's accounting under §164.528(a)(2), as
// POST AuditEvent/[id]/$withhold does.
func WithholdAuditEvent(ctx context.Context, cfg config.Config, id string) error {
	st, err := OpenExistingStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	return records.NewLedgerView(st, cliOfficer(cfg), "cli").Withhold(ctx, id)
}
