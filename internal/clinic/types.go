package clinic

// Patient is a registered patient (FHIR Patient).
type Patient struct {
	ID          string   `json:"id,omitempty" ro:"1" doc:"the patient's id" fhir:"Patient.id"`
	FirstName   string   `json:"first_name" req:"1" max:"100" doc:"given name" fhir:"Patient.name[0].given[0]"`
	MiddleName  string   `json:"middle_name,omitempty" max:"100" doc:"middle name(s)" fhir:"Patient.name[0].given[1]"`
	LastName    string   `json:"last_name" req:"1" max:"100" doc:"family name" fhir:"Patient.name[0].family"`
	DateOfBirth string   `json:"date_of_birth" req:"1" format:"date" doc:"date of birth" fhir:"Patient.birthDate"`
	Sex         string   `json:"sex,omitempty" enum:"male|female|other|unknown" doc:"administrative gender" fhir:"Patient.gender"`
	MRN         string   `json:"mrn,omitempty" max:"64" doc:"medical record number" fhir:"Patient.identifier (type MR, system https://wardhealth.org/fhir/sid/mrn)"`
	Phone       string   `json:"phone,omitempty" max:"32" doc:"telephone" fhir:"Patient.telecom (system phone)"`
	Email       string   `json:"email,omitempty" max:"254" format:"email" doc:"e-mail address" fhir:"Patient.telecom (system email)"`
	Address     *Address `json:"address,omitempty" doc:"home address" fhir:"Patient.address[0]"`
	Active      *bool    `json:"active,omitempty" ro:"1" doc:"false once the patient was deactivated (DELETE)" fhir:"Patient.active"`
	Version     string   `json:"version,omitempty" ro:"1" doc:"the version, for If-Match" fhir:"Patient.meta.versionId"`
	UpdatedAt   string   `json:"updated_at,omitempty" ro:"1" format:"date-time" doc:"when this version was stored" fhir:"Patient.meta.lastUpdated"`
}

// Address is a postal address.
type Address struct {
	Line1      string `json:"line1,omitempty" max:"200" doc:"street and number" fhir:"Address.line[0]"`
	Line2      string `json:"line2,omitempty" max:"200" doc:"more of the street address" fhir:"Address.line[1]"`
	City       string `json:"city,omitempty" max:"100" doc:"city" fhir:"Address.city"`
	State      string `json:"state,omitempty" max:"100" doc:"state or province" fhir:"Address.state"`
	PostalCode string `json:"postal_code,omitempty" max:"20" doc:"ZIP or postal code" fhir:"Address.postalCode"`
	Country    string `json:"country,omitempty" max:"100" doc:"country" fhir:"Address.country"`
}

// PatientList is a page of patients.
type PatientList struct {
	Items      []Patient `json:"items" doc:"the patients of this page"`
	NextCursor string    `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// Immunization is one vaccine dose (FHIR Immunization).
type Immunization struct {
	ID             string     `json:"id,omitempty" ro:"1" doc:"the dose's id" fhir:"Immunization.id"`
	PatientID      string     `json:"patient_id" req:"1" max:"64" doc:"the patient's id" fhir:"Immunization.patient"`
	Status         string     `json:"status,omitempty" ro:"1" enum:"completed|entered-in-error" doc:"completed, or entered-in-error after DELETE" fhir:"Immunization.status"`
	ErrorReason    string     `json:"error_reason,omitempty" ro:"1" enum:"wrong-patient|duplicate|wrong-vaccine|data-entry-error|other" doc:"why the dose was marked entered-in-error" fhir:"Immunization.statusReason"`
	VaccineCode    string     `json:"vaccine_code" req:"1" max:"8" doc:"CDC CVX code of the vaccine" fhir:"Immunization.vaccineCode.coding (system http://hl7.org/fhir/sid/cvx)"`
	VaccineName    string     `json:"vaccine_name,omitempty" max:"200" doc:"display name of the vaccine" fhir:"Immunization.vaccineCode.coding.display"`
	OccurredOn     string     `json:"occurred_on" req:"1" format:"date" doc:"date the dose was given" fhir:"Immunization.occurrenceDateTime"`
	LotNumber      string     `json:"lot_number,omitempty" max:"64" doc:"vaccine lot number" fhir:"Immunization.lotNumber"`
	ExpirationDate string     `json:"expiration_date,omitempty" format:"date" doc:"vaccine lot expiration date" fhir:"Immunization.expirationDate"`
	Site           string     `json:"site,omitempty" enum:"LA|RA|LT|RT|LD|RD|LVL|RVL|LG|RG|LUA|RUA|LLFA|RLFA" doc:"body site (HL7 v3 ActSite code)" fhir:"Immunization.site"`
	Route          string     `json:"route,omitempty" enum:"IM|SC|ID|PO|NASINHLC|IDINJ|TRNSDERM" doc:"route (HL7 v3 RouteOfAdministration code)" fhir:"Immunization.route"`
	DoseML         float64    `json:"dose_ml,omitempty" doc:"dose in millilitres" fhir:"Immunization.doseQuantity (UCUM mL)"`
	Performer      string     `json:"performer,omitempty" max:"64" doc:"id of the Practitioner who gave the dose" fhir:"Immunization.performer[0].actor"`
	Reactions      []Reaction `json:"reactions,omitempty" max:"20" doc:"reactions observed after the dose" fhir:"Immunization.reaction"`
	Version        string     `json:"version,omitempty" ro:"1" doc:"the version, for If-Match" fhir:"Immunization.meta.versionId"`
	UpdatedAt      string     `json:"updated_at,omitempty" ro:"1" format:"date-time" doc:"when this version was stored" fhir:"Immunization.meta.lastUpdated"`
}

// Reaction is a reaction to a dose.
type Reaction struct {
	Date        string `json:"date,omitempty" format:"date" doc:"when the reaction began" fhir:"Immunization.reaction.date"`
	Description string `json:"description" req:"1" max:"500" doc:"what was observed" fhir:"Immunization.reaction.detail.display"`
	Reported    bool   `json:"reported,omitempty" doc:"self-reported by the patient" fhir:"Immunization.reaction.reported"`
}

// ImmunizationList is a page of doses.
type ImmunizationList struct {
	Items      []Immunization `json:"items" doc:"the doses of this page"`
	NextCursor string         `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// Document is a stored document's metadata (FHIR DocumentReference; the
// content is a Binary).
type Document struct {
	ID          string `json:"id" ro:"1" doc:"the document's id" fhir:"DocumentReference.id"`
	PatientID   string `json:"patient_id" doc:"the patient's id" fhir:"DocumentReference.subject"`
	Title       string `json:"title,omitempty" doc:"title" fhir:"DocumentReference.content[0].attachment.title"`
	Description string `json:"description,omitempty" doc:"description" fhir:"DocumentReference.description"`
	Category    string `json:"category,omitempty" doc:"kind of document" fhir:"DocumentReference.category"`
	ContentType string `json:"content_type" doc:"media type of the content" fhir:"DocumentReference.content[0].attachment.contentType"`
	Size        int    `json:"size" doc:"content size in bytes" fhir:"DocumentReference.content[0].attachment.size"`
	SHA1        string `json:"sha1" doc:"SHA-1 of the content, base64" fhir:"DocumentReference.content[0].attachment.hash"`
	ContentURL  string `json:"content_url" doc:"where to GET the content" fhir:"DocumentReference.content[0].attachment.url (Binary/<id>)"`
	CreatedAt   string `json:"created_at" format:"date-time" doc:"when it was uploaded" fhir:"DocumentReference.date"`
}

// DocumentList is a page of documents.
type DocumentList struct {
	Items      []Document `json:"items" doc:"the documents of this page"`
	NextCursor string     `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// DocumentUpload is the multipart form of POST /documents.
type DocumentUpload struct {
	File        string `json:"file" req:"1" format:"binary" doc:"the content (its part's Content-Type is the document's)"`
	PatientID   string `json:"patient_id" req:"1" max:"64" doc:"the patient's id"`
	Title       string `json:"title,omitempty" max:"200" doc:"title"`
	Description string `json:"description,omitempty" max:"500" doc:"description"`
	Category    string `json:"category,omitempty" enum:"consent-form|lab-report|referral|imaging|other" doc:"kind of document"`
}

// Consent is a patient's consent (FHIR Consent).
type Consent struct {
	ID               string      `json:"id,omitempty" ro:"1" doc:"the consent's id" fhir:"Consent.id"`
	PatientID        string      `json:"patient_id" req:"1" max:"64" doc:"the patient's id" fhir:"Consent.patient"`
	Type             string      `json:"type" req:"1" enum:"treatment|research|marketing" doc:"the use consented to" fhir:"Consent.scope, Consent.provision.purpose"`
	Status           string      `json:"status,omitempty" ro:"1" enum:"active|inactive" doc:"active, or inactive once revoked" fhir:"Consent.status"`
	Start            string      `json:"start,omitempty" format:"date" doc:"first day it applies (default: today)" fhir:"Consent.provision.period.start"`
	End              string      `json:"end,omitempty" format:"date" doc:"last day it applies (default: open)" fhir:"Consent.provision.period.end"`
	LegalBasis       string      `json:"legal_basis" req:"1" enum:"hipaa-authorization|gdpr-consent|gdpr-explicit-consent|gdpr-other-basis|other" doc:"the legal basis" fhir:"Consent.policyRule"`
	Witness          string      `json:"witness,omitempty" max:"200" doc:"name of the witness" fhir:"Consent.verification[0].verifiedWith.display"`
	SignedForm       *Attachment `json:"signed_form,omitempty" doc:"the signed form" fhir:"Consent.sourceAttachment"`
	DateTime         string      `json:"date_time,omitempty" ro:"1" format:"date-time" doc:"when it was recorded" fhir:"Consent.dateTime"`
	RevokedAt        string      `json:"revoked_at,omitempty" ro:"1" format:"date-time" doc:"when it was revoked" fhir:"Consent.extension[revocation].revokedAt"`
	RevocationReason string      `json:"revocation_reason,omitempty" ro:"1" doc:"why it was revoked" fhir:"Consent.extension[revocation].reason"`
}

// Attachment is an attached file, base64 in JSON.
type Attachment struct {
	ContentType string `json:"content_type" req:"1" enum:"application/pdf|image/png|image/jpeg" doc:"media type" fhir:"Attachment.contentType"`
	Data        string `json:"data,omitempty" format:"byte" doc:"the content, base64 (only in requests; answers give size)" fhir:"Attachment.data"`
	Title       string `json:"title,omitempty" max:"200" doc:"title" fhir:"Attachment.title"`
	Size        int    `json:"size,omitempty" ro:"1" doc:"size in bytes" fhir:"Attachment.size"`
}

// ConsentList is a page of consents.
type ConsentList struct {
	Items      []Consent `json:"items" doc:"the consents of this page"`
	NextCursor string    `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// Revocation is the body of POST /consents/{id}/revoke.
type Revocation struct {
	Reason string `json:"reason" req:"1" max:"500" doc:"why the consent is revoked"`
}

// ConsentStatus summarises what a patient's consents permit now.
type ConsentStatus struct {
	PatientID string               `json:"patient_id" doc:"the patient's id"`
	AsOf      string               `json:"as_of" format:"date-time" doc:"when this was computed"`
	Uses      map[string]UseStatus `json:"uses" doc:"by use: treatment, research, marketing"`
}

// UseStatus is one use's status.
type UseStatus struct {
	Permitted  bool     `json:"permitted" doc:"an active consent permits this use now"`
	Until      string   `json:"until,omitempty" format:"date" doc:"last day of the latest permitting consent; absent when open-ended or not permitted"`
	ConsentIDs []string `json:"consent_ids,omitempty" doc:"the consents that permit it"`
}

// AnonymizeRequest is the body of POST /anonymize.
type AnonymizeRequest struct {
	Project    string   `json:"project" req:"1" max:"64" doc:"research project name ([a-z0-9-]); its key makes the pseudonyms"`
	PatientIDs []string `json:"patient_ids,omitempty" max:"1000" doc:"restrict to these patients (default: every patient whose research consent permits)"`
	Include    []string `json:"include,omitempty" max:"2" doc:"resource types to extract: Patient, Immunization (default both)"`
	DateShift  bool     `json:"date_shift,omitempty" doc:"shift dates per patient instead of reducing them to the year"`
	Format     string   `json:"format,omitempty" enum:"ndjson|bundle" doc:"FHIR NDJSON (default) or a collection Bundle"`
}

// Ready is the answer of GET /ready.
type Ready struct {
	Status string `json:"status" enum:"ok|unavailable" doc:"ok when the database and the ledger answer"`
}

// PatientQuery is the body of POST /patients/search: the same search as
// GET /patients/search with the identifying values out of the URL.
type PatientQuery struct {
	Name        string `json:"name,omitempty" max:"100" doc:"prefix of the first or last name (2 to 32 characters are compared)"`
	LastName    string `json:"last_name,omitempty" max:"100" doc:"prefix of the last name"`
	DateOfBirth string `json:"date_of_birth,omitempty" format:"date" doc:"exact date of birth"`
	MRN         string `json:"mrn,omitempty" max:"64" doc:"exact medical record number"`
	Phone       string `json:"phone,omitempty" max:"32" doc:"exact telephone"`
	Limit       int    `json:"limit,omitempty" doc:"page size (default 20, at most 100)"`
	Cursor      string `json:"cursor,omitempty" doc:"the next_cursor of the previous page"`
}
