package clinic

import (
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/records"
)

// SystemDocCategory is the facade's document categories.
const SystemDocCategory = "https://wardhealth.org/fhir/CodeSystem/document-category"

// documentTypes are the content types an upload may have.
var documentTypes = []string{"application/pdf", "image/png", "image/jpeg", "text/plain"}

func documentFromFHIR(res *records.Resource) (Document, error) {
	doc, err := decodeDoc(res)
	if err != nil {
		return Document{}, err
	}
	d := Document{ID: res.ID, PatientID: refID(doc["subject"], "Patient"), Description: str(doc, "description"),
		CreatedAt: str(doc, "date"), ContentURL: "/documents/" + res.ID + "/content"}
	for _, cat := range list(doc["category"]) {
		if code, _ := firstCode(cat, SystemDocCategory); code != "" {
			d.Category = code
		}
	}
	if cs := list(doc["content"]); len(cs) > 0 {
		att := obj(obj(cs[0])["attachment"])
		d.ContentType, d.Title, d.SHA1 = str(att, "contentType"), str(att, "title"), str(att, "hash")
		size, _ := att["size"].(float64)
		d.Size = int(size)
	}
	if d.CreatedAt == "" {
		d.CreatedAt = res.LastUpdated.UTC().Format(time.RFC3339)
	}
	return d, nil
}

// uploadDocument is POST /documents: the file becomes a Binary and its
// metadata a DocumentReference, committed in one FHIR transaction through
// records (both or neither). The body is bounded by WARD_MAX_BODY_BYTES.
func (a *API) uploadDocument(c *call) error {
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	if mt != "multipart/form-data" {
		return newProblem("unsupported-media-type", "the body must be multipart/form-data")
	}
	if err := c.r.ParseMultipartForm(a.edge.MaxBodyBytes()); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return newProblem("invalid-field", "the multipart form could not be read", FieldError{"file", "the multipart form could not be read"})
	}
	defer c.r.MultipartForm.RemoveAll()
	up := DocumentUpload{File: "-", PatientID: c.r.FormValue("patient_id"), Title: c.r.FormValue("title"),
		Description: c.r.FormValue("description"), Category: c.r.FormValue("category")}
	if errs := check(&up); len(errs) > 0 {
		return newProblem("invalid-field", errs[0].Field+": "+errs[0].Detail, errs...)
	}
	f, fh, err := c.r.FormFile("file")
	if err != nil {
		return invalidField("file", "is required")
	}
	defer f.Close()
	ct, _, _ := mime.ParseMediaType(fh.Header.Get("Content-Type"))
	if !contains(documentTypes, ct) {
		return invalidField("file", "content type must be one of "+strings.Join(documentTypes, ", "))
	}
	content, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	if len(content) == 0 {
		return invalidField("file", "is empty")
	}
	sum := sha1.Sum(content)
	binID := uuid.NewString()
	bin, err := c.resource(map[string]any{"resourceType": "Binary", "id": binID, "contentType": ct,
		"securityContext": map[string]any{"reference": "Patient/" + up.PatientID},
		"data":            base64.StdEncoding.EncodeToString(content)})
	if err != nil {
		return err
	}
	att := map[string]any{"contentType": ct, "url": "Binary/" + binID, "size": len(content),
		"hash": base64.StdEncoding.EncodeToString(sum[:]), "creation": a.o.Now().UTC().Format(time.RFC3339)}
	if up.Title != "" {
		att["title"] = up.Title
	}
	dr := map[string]any{"resourceType": "DocumentReference", "status": "current",
		"subject": map[string]any{"reference": "Patient/" + up.PatientID},
		"date":    a.o.Now().UTC().Format(time.RFC3339),
		"content": []any{map[string]any{"attachment": att}}}
	if up.Description != "" {
		dr["description"] = up.Description
	}
	if up.Category != "" {
		dr["category"] = []any{concept(SystemDocCategory, up.Category, "")}
	}
	ref, err := c.resource(dr)
	if err != nil {
		return err
	}
	results, err := c.repo.Transaction(c.r.Context(), []records.Entry{
		{Index: -1, Method: http.MethodPut, Type: "Binary", ID: binID, Resource: bin},
		{Index: -1, Method: http.MethodPost, Type: "DocumentReference", Resource: ref},
	})
	if err != nil {
		return err
	}
	return writeFrom(c, http.StatusCreated, "/documents/", results[1].Resource, documentFromFHIR)
}

// getDocument answers the metadata, or the content when the Accept header
// asks for the content's type rather than JSON.
func (a *API) getDocument(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	res, err := c.repo.Read(c.r.Context(), "DocumentReference", id)
	if err != nil {
		return err
	}
	d, err := documentFromFHIR(res)
	if err != nil {
		return err
	}
	accept := c.r.Header.Get("Accept")
	if accept != "" && !acceptsJSON(accept) {
		if !strings.Contains(accept, d.ContentType) && !strings.Contains(accept, "*/*") {
			return newProblem("not-acceptable", "Accept must name application/json or the document's content type")
		}
		return a.writeContent(c, res)
	}
	return writeFrom(c, http.StatusOK, "", res, documentFromFHIR)
}

func acceptsJSON(accept string) bool {
	for _, part := range strings.Split(accept, ",") {
		mt, _, _ := mime.ParseMediaType(strings.TrimSpace(part))
		if mt == "application/json" || mt == "application/*" {
			return true
		}
	}
	return false
}

func (a *API) getDocumentContent(c *call) error {
	id, err := c.pathID()
	if err != nil {
		return err
	}
	res, err := c.repo.Read(c.r.Context(), "DocumentReference", id)
	if err != nil {
		return err
	}
	return a.writeContent(c, res)
}

// writeContent sends the Binary a DocumentReference names, read through
// records (its own decision and ledger record).
func (a *API) writeContent(c *call, dr *records.Resource) error {
	doc, err := decodeDoc(dr)
	if err != nil {
		return err
	}
	var binID string
	if cs := list(doc["content"]); len(cs) > 0 {
		binID, _ = strings.CutPrefix(str(obj(obj(cs[0])["attachment"]), "url"), "Binary/")
	}
	if binID == "" {
		return newProblem("not-found", "the document has no stored content")
	}
	bin, err := c.repo.Read(c.r.Context(), "Binary", binID)
	if err != nil {
		return err
	}
	bd, err := decodeDoc(bin)
	if err != nil {
		return err
	}
	raw, err := base64.StdEncoding.DecodeString(str(bd, "data"))
	if err != nil {
		return err
	}
	c.w.Header().Set("Content-Type", str(bd, "contentType"))
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.Header().Set("Content-Disposition", "attachment")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(raw)
	return nil
}

func (a *API) listDocuments(c *call) error {
	vals := url.Values{}
	if v := c.r.URL.Query().Get("patient_id"); v != "" {
		vals.Set("subject", "Patient/"+v)
	}
	limit, err := c.limit()
	if err != nil {
		return err
	}
	pg, err := c.searchPage(c.r.Context(), "documents", "DocumentReference", vals, limit)
	if err != nil {
		return err
	}
	out := DocumentList{Items: []Document{}, NextCursor: pg.next}
	for i := range pg.res {
		d, err := documentFromFHIR(&pg.res[i])
		if err != nil {
			return err
		}
		out.Items = append(out.Items, d)
	}
	return c.writeJSON(http.StatusOK, out)
}
