// Package clinic is the clinic JSON API: the flat, friendly endpoints of
// the first clients (/patients, /immunizations, /documents, /consents,
// /fhir/validate, /anonymize, /ready) and their OpenAPI 3.1 document.
//
// It is a facade, not a second system: every endpoint maps to FHIR
// resources (Patient, Immunization, DocumentReference + Binary, Consent)
// and reaches them only through records (the caller-bound repository), so
// the access decision, sealing, the ledger and the fact invalidation are
// the FHIR API's own; nothing is stored twice. What it guarantees:
//   - one route table (routes.go) both serves the API and generates the
//     OpenAPI document, whose schemas come from the same Go types (their
//     tags) that decode and validate the requests;
//   - every error is RFC 9457 application/problem+json with a stable type
//     per error and the field at fault, classified by the api's one error
//     table; no submitted or stored value is ever echoed in an error;
//   - lists are paged by opaque cursors with a capped limit.
package clinic

import (
	"context"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/api"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/records"
)

// Options configure the clinic API.
type Options struct {
	// ListCap bounds the candidate set GET /patients decrypts and sorts by
	// last name (names are never stored in clear, so they cannot be sorted
	// in SQL); a filter matching more is refused with list-too-large.
	// 0: DefaultListCap.
	ListCap int
	// MaxLimit caps a page's limit (0: DefaultMaxLimit).
	MaxLimit int
	// ProjectKey returns the de-identification key of a research project
	// of tenant (stable per project, unrelated across projects); nil
	// disables /anonymize.
	ProjectKey func(ctx context.Context, tenant, project string) ([]byte, error)
	// CursorKey (32 bytes) seals the paging cursors; every node of a
	// cluster needs the same. Empty: a random key per process (cursors
	// then fail after a restart or on another node).
	CursorKey []byte
	// Now is the clock (for ages in de-identification and consent status).
	Now func() time.Time
}

// Defaults.
const (
	DefaultListCap  = 2000
	DefaultMaxLimit = 100
	defaultLimit    = 20
)

// API is the clinic JSON API, mounted on the server's mux by api.New.
type API struct {
	o    Options
	edge api.Edge
	aead cipher.AEAD
}

var _ api.Mounter = (*API)(nil)

// New returns the API.
func New(o Options) (*API, error) {
	if o.ListCap <= 0 {
		o.ListCap = DefaultListCap
	}
	if o.MaxLimit <= 0 {
		o.MaxLimit = DefaultMaxLimit
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	aead, err := newAEAD(o.CursorKey)
	if err != nil {
		return nil, err
	}
	return &API{o: o, aead: aead}, nil
}

// Mount registers every route of the table.
func (a *API) Mount(mux *http.ServeMux, e api.Edge) {
	a.edge = e
	for _, rt := range a.routes() {
		mux.Handle(rt.Method+" "+muxPath(rt.Path), a.wrap(rt))
	}
}

// muxPath turns an OpenAPI path into a ServeMux pattern ("{id}" is the
// same in both; "$" must be literal, which it is in ServeMux).
func muxPath(p string) string { return p }

// call is one request to a route.
type call struct {
	w    http.ResponseWriter
	r    *http.Request
	subj authz.Subject
	repo *records.Repo
	a    *API
}

func (a *API) wrap(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r, a: a}
		if !rt.Public {
			subj, err := a.edge.Subject(r)
			if err != nil {
				a.fail(c, rt, err)
				return
			}
			c.subj, c.repo = subj, a.edge.Repo(r, subj)
		}
		if d := a.edge.Limits().RequestTimeout; d > 0 && !rt.Public {
			ctx, cancel := context.WithTimeout(r.Context(), d)
			defer cancel()
			c.r = r.WithContext(ctx)
		}
		if err := rt.handle(c); err != nil {
			a.fail(c, rt, err)
		}
	})
}

func (a *API) fail(c *call, rt *route, err error) {
	if rt.FHIRErrors {
		a.edge.WriteOutcome(c.w, c.r, err)
		return
	}
	writeProblem(c.w, c.r, a.edge, rt.fields, err)
}

// writeJSON answers with v as JSON.
func (c *call) writeJSON(status int, v any) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(status)
	return json.NewEncoder(c.w).Encode(v)
}

// decode reads a JSON body into v within the body limit, refusing unknown
// fields, then checks v against its type's tags (required, enum, format,
// length).
func (c *call) decode(v any) error {
	ct := c.r.Header.Get("Content-Type")
	if mt, _, _ := strings.Cut(ct, ";"); !strings.EqualFold(strings.TrimSpace(mt), "application/json") {
		return &Problem{Type: "unsupported-media-type", Status: http.StatusUnsupportedMediaType, Title: "Unsupported media type",
			Detail: "the body must be application/json"}
	}
	body, err := io.ReadAll(c.r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(mbe.Limit)
		}
		return &Problem{Type: "invalid-json", Status: http.StatusBadRequest, Title: "Malformed JSON", Detail: "the request body could not be read"}
	}
	return decodeInto(body, v)
}
