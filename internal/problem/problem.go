// Package problem holds the error classes that cross layers. Lower layers
// wrap one of the sentinels with context (fmt.Errorf("...: %w", ErrX)); the
// HTTP edge maps the class to a status and an OperationOutcome in one table
// and hides everything else. Messages built here never contain PHI.
package problem

import "errors"

// The classes.
var (
	ErrInvalid            = errors.New("invalid")             // 400
	ErrUnauthorized       = errors.New("unauthorized")        // 401
	ErrForbidden          = errors.New("forbidden")           // 403
	ErrNotFound           = errors.New("not found")           // 404
	ErrNotAllowed         = errors.New("method not allowed")  // 405
	ErrNotAcceptable      = errors.New("not acceptable")      // 406
	ErrConflict           = errors.New("conflict")            // 409
	ErrGone               = errors.New("gone")                // 410
	ErrPreconditionFailed = errors.New("precondition failed") // 412
	ErrTooLarge           = errors.New("too large")           // 413
	ErrUnsupportedMedia   = errors.New("unsupported media")   // 415
	ErrUnprocessable      = errors.New("unprocessable")       // 422
	ErrThrottled          = errors.New("throttled")           // 429
	ErrUnavailable        = errors.New("unavailable")         // 503
)

// Issue is one finding shaped like an OperationOutcome issue (fhir.Issue
// is this type). Diagnostics never contains a value read from a resource.
type Issue struct {
	Severity    string // error, warning, information (or fatal)
	Code        string // FHIR issue-type code: invalid, structure, required, value, not-supported, ...
	Expression  string // FHIRPath-like location, e.g. "Patient.name[0].given[1]"; "" when not about an element
	Diagnostics string
}

// Error is a classified error with the FHIR issues to show the client.
// Issues are shown verbatim, so they must name elements and rules, never
// values.
type Error struct {
	Class  error
	Issues []Issue
}

func (e *Error) Error() string {
	if len(e.Issues) == 0 {
		return e.Class.Error()
	}
	msg := e.Class.Error() + ": " + e.Issues[0].Diagnostics
	if e.Issues[0].Expression != "" {
		msg += " (" + e.Issues[0].Expression + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Class }

// New returns a classified error with one issue.
func New(class error, code, diagnostics string) *Error {
	return &Error{Class: class, Issues: []Issue{{Severity: "error", Code: code, Diagnostics: diagnostics}}}
}

// At is New with an element expression.
func At(class error, code, expression, diagnostics string) *Error {
	return &Error{Class: class, Issues: []Issue{{Severity: "error", Code: code, Expression: expression, Diagnostics: diagnostics}}}
}
