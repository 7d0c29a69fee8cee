package store

import "time"

// Export job states.
const (
	ExportQueued    = "queued"
	ExportRunning   = "running"
	ExportCompleted = "completed"
	ExportFailed    = "failed"
)

// ExportJob is a Bulk Data export job. Nothing in it is PHI: ids, codes,
// resource types and times.
type ExportJob struct {
	ID     string
	Tenant string
	// Requester, Role and Scopes are the subject that kicked the export
	// off; the worker decides access as that subject.
	Requester string
	Role      string
	Scopes    []string
	// Kind is "system", "patient" or "group" (GroupID set).
	Kind    string
	GroupID string
	Types   []string  // empty: every type the kind allows
	Since   time.Time // zero: no lower bound
	// Request is the kick-off request as Ward understood it (relative
	// URL rebuilt from the parsed parameters, never the client's text).
	Request string
	Status  string
	// Progress is a short text for X-Progress ("Observation, 3 of 12 types").
	Progress string
	Created  time.Time
	// TxTime is the transaction time: resources changed after it are
	// left out.
	TxTime   time.Time
	Expires  time.Time
	Error    string // failure reason, no PHI
	Owner    string
	Lease    time.Time
	Attempts int
	// Purpose is the requester's purpose of use at kick-off ("" : the
	// role's default); the worker decides as that purpose.
	Purpose string
	// Deidentify is the de-identification method of the output ("" : none)
	// and Project the research project whose key makes the pseudonyms.
	Deidentify, Project string
}

// ExportPart is one NDJSON output file of a job.
type ExportPart struct {
	Part  int
	Type  string
	Lines int
	Bytes int64
	// Refs are the references ("Type/id/_history/v") in the part, in
	// order; filled only by ExportPart, not by ExportParts.
	Refs []string
}
