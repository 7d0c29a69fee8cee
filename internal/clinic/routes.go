package clinic

import (
	"net/http"
	"reflect"
)

// route is one endpoint: what serves it and what the OpenAPI document
// says of it, in one place.
type route struct {
	Method, Path string
	ID           string // operationId
	Summary      string
	Tag          string
	Params       []param
	// Body is the request body's type (nil: none); BodyMedia its media
	// type (default application/json).
	Body      reflect.Type
	BodyMedia string
	// Status and Resp: the success answer (Resp nil: no JSON schema,
	// RespMedia names the media types).
	Status    int
	Resp      reflect.Type
	RespMedia []string
	// Errors are the problem statuses it documents (beyond the common
	// 401, 403, 429, 500, 503).
	Errors []int
	// Public routes need no token; FHIRErrors routes answer errors as an
	// OperationOutcome (FHIR paths).
	Public, FHIRErrors bool
	handle             func(c *call) error
	// fields maps FHIR element paths to this route's field names, for
	// errors found in the FHIR resource a request became.
	fields map[string]string
}

// param is a path or query parameter.
type param struct {
	Name, In, Doc, Format string
	Required              bool
	Enum                  []string
	Integer               bool
}

func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }

var (
	pID     = param{Name: "id", In: "path", Required: true, Doc: "the resource id"}
	pLimit  = param{Name: "limit", In: "query", Integer: true, Doc: "page size (default 20, at most the configured maximum, 100 by default)"}
	pCursor = param{Name: "cursor", In: "query", Doc: "the next_cursor of the previous page"}
	pMatch  = param{Name: "If-Match", In: "header", Doc: "the version the update is based on (W/\"<version>\" or the version)"}
)

// routes is the table of the clinic API.
func (a *API) routes() []*route {
	return []*route{
		{Method: "GET", Path: "/patients", ID: "listPatients", Tag: "patients", Summary: "List patients sorted by last name, first name, id",
			Params: []param{{Name: "active", In: "query", Enum: []string{"true", "false", "any"}, Doc: "active patients only (default true), inactive only, or any"}, pLimit, pCursor},
			Status: 200, Resp: typeOf[PatientList](), Errors: []int{400, 422}, handle: a.listPatients},
		{Method: "POST", Path: "/patients", ID: "createPatient", Tag: "patients", Summary: "Register a patient",
			Body: typeOf[Patient](), Status: 201, Resp: typeOf[Patient](), Errors: []int{400, 413, 415}, handle: a.createPatient, fields: patientFields},
		{Method: "GET", Path: "/patients/search", ID: "searchPatients", Tag: "patients", Summary: "Search patients by name prefix, birth date, MRN or phone (blind indexes)",
			Params: []param{
				{Name: "name", In: "query", Doc: "prefix of the first or last name (2 to 32 characters are compared)"},
				{Name: "last_name", In: "query", Doc: "prefix of the last name"},
				{Name: "date_of_birth", In: "query", Format: "date", Doc: "exact date of birth"},
				{Name: "mrn", In: "query", Doc: "exact medical record number"},
				{Name: "phone", In: "query", Doc: "exact telephone"},
				pLimit, pCursor},
			Status: 200, Resp: typeOf[PatientList](), Errors: []int{400}, handle: a.searchPatients},
		{Method: "POST", Path: "/patients/search", ID: "searchPatientsByBody", Tag: "patients", Summary: "The same search with the values in the body (keeps names and numbers out of URLs)",
			Body: typeOf[PatientQuery](), Status: 200, Resp: typeOf[PatientList](), Errors: []int{400, 413, 415}, handle: a.searchPatients},
		{Method: "GET", Path: "/patients/{id}", ID: "getPatient", Tag: "patients", Summary: "One patient",
			Params: []param{pID}, Status: 200, Resp: typeOf[Patient](), Errors: []int{400, 404}, handle: a.getPatient},
		{Method: "PUT", Path: "/patients/{id}", ID: "updatePatient", Tag: "patients", Summary: "Update a patient (the whole record)",
			Params: []param{pID, pMatch}, Body: typeOf[Patient](), Status: 200, Resp: typeOf[Patient](), Errors: []int{400, 404, 409, 412, 413, 415},
			handle: a.updatePatient, fields: patientFields},
		{Method: "DELETE", Path: "/patients/{id}", ID: "deactivatePatient", Tag: "patients", Summary: "Deactivate a patient (active=false; the record and its history are kept)",
			Params: []param{pID}, Status: 200, Resp: typeOf[Patient](), Errors: []int{400, 404}, handle: a.deactivatePatient},
		{Method: "GET", Path: "/patients/{id}/consent-status", ID: "consentStatus", Tag: "consents", Summary: "Which uses the patient's consents permit now, and until when",
			Params: []param{pID}, Status: 200, Resp: typeOf[ConsentStatus](), Errors: []int{400, 404}, handle: a.consentStatus},

		{Method: "GET", Path: "/immunizations", ID: "listImmunizations", Tag: "immunizations", Summary: "List doses, by patient, CVX code and date range, in Ward's FHIR search order",
			Params: []param{
				{Name: "patient_id", In: "query", Doc: "the patient's id"},
				{Name: "vaccine_code", In: "query", Doc: "CVX code"},
				{Name: "from", In: "query", Format: "date", Doc: "given on or after"},
				{Name: "to", In: "query", Format: "date", Doc: "given on or before"},
				pLimit, pCursor},
			Status: 200, Resp: typeOf[ImmunizationList](), Errors: []int{400}, handle: a.listImmunizations},
		{Method: "POST", Path: "/immunizations", ID: "createImmunization", Tag: "immunizations", Summary: "Record a dose",
			Body: typeOf[Immunization](), Status: 201, Resp: typeOf[Immunization](), Errors: []int{400, 413, 415}, handle: a.createImmunization, fields: immunizationFields},
		{Method: "GET", Path: "/immunizations/{id}", ID: "getImmunization", Tag: "immunizations", Summary: "One dose",
			Params: []param{pID}, Status: 200, Resp: typeOf[Immunization](), Errors: []int{400, 404}, handle: a.getImmunization},
		{Method: "PUT", Path: "/immunizations/{id}", ID: "updateImmunization", Tag: "immunizations", Summary: "Update a dose",
			Params: []param{pID, pMatch}, Body: typeOf[Immunization](), Status: 200, Resp: typeOf[Immunization](), Errors: []int{400, 404, 409, 412, 413, 415},
			handle: a.updateImmunization, fields: immunizationFields},
		{Method: "DELETE", Path: "/immunizations/{id}", ID: "retractImmunization", Tag: "immunizations", Summary: "Mark a dose entered-in-error, with a reason (kept in history)",
			Params: []param{pID, {Name: "reason", In: "query", Required: true, Enum: []string{"wrong-patient", "duplicate", "wrong-vaccine", "data-entry-error", "other"}, Doc: "why"}},
			Status: 200, Resp: typeOf[Immunization](), Errors: []int{400, 404}, handle: a.retractImmunization},

		{Method: "GET", Path: "/documents", ID: "listDocuments", Tag: "documents", Summary: "Documents the caller may see, by patient",
			Params: []param{{Name: "patient_id", In: "query", Doc: "the patient's id"}, pLimit, pCursor},
			Status: 200, Resp: typeOf[DocumentList](), Errors: []int{400}, handle: a.listDocuments},
		{Method: "POST", Path: "/documents", ID: "uploadDocument", Tag: "documents", Summary: "Upload a document (multipart/form-data: file and metadata)",
			Body: typeOf[DocumentUpload](), BodyMedia: "multipart/form-data", Status: 201, Resp: typeOf[Document](), Errors: []int{400, 413, 415}, handle: a.uploadDocument},
		{Method: "GET", Path: "/documents/{id}", ID: "getDocument", Tag: "documents", Summary: "A document's metadata (application/json), or its content when Accept names the content's type",
			Params: []param{pID}, Status: 200, Resp: typeOf[Document](), RespMedia: []string{"application/json", "*/*"}, Errors: []int{400, 404, 406}, handle: a.getDocument},
		{Method: "GET", Path: "/documents/{id}/content", ID: "getDocumentContent", Tag: "documents", Summary: "A document's content",
			Params: []param{pID}, Status: 200, RespMedia: []string{"*/*"}, Errors: []int{400, 404}, handle: a.getDocumentContent},

		{Method: "GET", Path: "/consents", ID: "listConsents", Tag: "consents", Summary: "A patient's consents",
			Params: []param{{Name: "patient_id", In: "query", Required: true, Doc: "the patient's id"}, pLimit, pCursor},
			Status: 200, Resp: typeOf[ConsentList](), Errors: []int{400}, handle: a.listConsents},
		{Method: "POST", Path: "/consents", ID: "grantConsent", Tag: "consents", Summary: "Grant a consent (takes effect in access decisions at once)",
			Body: typeOf[Consent](), Status: 201, Resp: typeOf[Consent](), Errors: []int{400, 413, 415}, handle: a.grantConsent, fields: consentFields},
		{Method: "POST", Path: "/consents/{id}/revoke", ID: "revokeConsent", Tag: "consents", Summary: "Revoke a consent, with a reason (takes effect at once)",
			Params: []param{pID}, Body: typeOf[Revocation](), Status: 200, Resp: typeOf[Consent](), Errors: []int{400, 404, 409, 413, 415}, handle: a.revokeConsent},

		{Method: "POST", Path: "/fhir/validate", ID: "validateResource", Tag: "fhir", Summary: "Validate a FHIR resource; answers an OperationOutcome with every issue, stores nothing",
			BodyMedia: "application/fhir+json", Status: 200, RespMedia: []string{"application/fhir+json"}, FHIRErrors: true, Errors: []int{400, 413, 415}, handle: a.validate},
		{Method: "POST", Path: "/anonymize", ID: "anonymize", Tag: "research", Summary: "De-identified extract (HIPAA Safe Harbor) of the patients whose research consent permits; purpose of use HRESCH",
			Body: typeOf[AnonymizeRequest](), Status: 200, RespMedia: []string{"application/fhir+ndjson", "application/fhir+json"}, Errors: []int{400, 413, 415}, handle: a.anonymize},
		{Method: "GET", Path: "/ready", ID: "ready", Tag: "operations", Summary: "Readiness: the database and the ledger answer",
			Status: 200, Resp: typeOf[Ready](), Public: true, handle: a.ready},
		{Method: "GET", Path: "/api/openapi.json", ID: "openapi", Tag: "operations", Summary: "This document",
			Status: 200, RespMedia: []string{"application/json"}, Public: true, handle: a.openapi},
	}
}

func (a *API) ready(c *call) error {
	if err := a.edge.Health(c.r.Context()); err != nil {
		return c.writeJSON(http.StatusServiceUnavailable, Ready{Status: "unavailable"})
	}
	return c.writeJSON(http.StatusOK, Ready{Status: "ok"})
}
