// Package audit is the pure core of Ward's audit ledger: the record, its
// canonical encoding, the hash chain and its verification, and the
// Recorder, the only way records reach the ledger. It does no I/O itself:
// the recorder writes through a one-method interface that the stores
// satisfy.
//
// Guarantee: a record's hash commits to every field and to the previous
// record's hash; Verify names the first sequence number where the chain
// breaks.
//
// Hashing is domain-separated in the manner of RFC 6962 (Certificate
// Transparency), so an entry hash can never be confused with a link hash:
//
//	EntryHash(r)      = SHA-256(0x00 || canonical(r))
//	Link(prev, entry) = SHA-256(0x01 || prev || entry)
//	r.Hash            = Link(r.PrevHash, EntryHash(r))
//
// and the first record links to Genesis = SHA-256("ward audit ledger genesis v1").
//
// Records hold no PHI: ids, codes and references only (STYLE.md, convention
// 4). The canonical encoding never changes once released; a new layout gets
// a new format version byte (version 2 added the patient list).
package audit

import (
	"strconv"
	"time"
)

// Outcome is the FHIR AuditEvent.outcome code of the audited action.
type Outcome int

// FHIR AuditEvent outcome codes (http://hl7.org/fhir/audit-event-outcome).
const (
	OutcomeSuccess Outcome = 0  // success
	OutcomeMinor   Outcome = 4  // minor failure: client error, access denied
	OutcomeSerious Outcome = 8  // serious failure: the request could not be completed
	OutcomeMajor   Outcome = 12 // major failure: the server or a dependency failed
)

// String returns the FHIR display name of the outcome.
func (o Outcome) String() string {
	switch o {
	case OutcomeSuccess:
		return "success"
	case OutcomeMinor:
		return "minor failure"
	case OutcomeSerious:
		return "serious failure"
	case OutcomeMajor:
		return "major failure"
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Record is one ledger entry: who did what to which resources, with what
// outcome. Every field except PrevHash and Hash is covered by Hash.
//
// Strings are hashed byte for byte; a store must return them exactly as
// written (no Unicode normalization or trimming) or Verify reports a hash
// mismatch.
type Record struct {
	Seq int64 // 1 for the first record, then contiguous
	// Time is when the access happened; Chain stores it in UTC truncated to
	// microseconds, the precision every store keeps.
	Time         time.Time
	Tenant       string
	RequestID    string
	Actor        string // user or client id, never a name
	Role         string
	Action       string // create, read, vread, update, delete, history-instance, search-type, login, ...
	ResourceType string
	// Entities are the references actually touched or disclosed, such as
	// "Patient/abc/_history/2".
	Entities  []string
	Outcome   Outcome
	Detail    string // reason code, never PHI
	Emergency bool   // break-the-glass access
	Purpose   string // purpose-of-use code
	// Patients are the opaque ids of the patients whose compartments the
	// audited resources are in (never names): what the ledger's patient
	// index (tenant, patient, time) is built from, for the accounting of
	// disclosures. Chain sorts them and drops repeats; a record with
	// patients is encoded in canonical format version 2, one without in
	// version 1, so records written before this field verify unchanged.
	Patients []string
	// Address is the client's network address as the server saw it: a
	// keyed hash (hex) under the tenant's blind-index key unless the
	// operator configured plain addresses; "" when unknown. Like
	// Patients it is encoded only in format version 2.
	Address  string
	PrevHash [32]byte
	Hash     [32]byte
}
