package clinic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/wardhealth/ward/internal/app/apptest"
)

// contract checks live requests and responses against the OpenAPI
// document the server publishes, with kin-openapi (OpenAPI 3.1, JSON
// Schema 2020-12 validation), and remembers which operations ran.
type contract struct {
	t      *testing.T
	w      *apptest.Ward
	doc    *openapi3.T
	router routers.Router
	mu     sync.Mutex
	seen   map[string]bool
}

func init() {
	// Bodies kin-openapi has no decoder for: validated as JSON when they
	// are JSON, and as opaque bytes otherwise (the document gives them no
	// schema).
	raw := func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	}
	openapi3filter.RegisterBodyDecoder("application/fhir+ndjson", raw)
	openapi3filter.RegisterBodyDecoder("application/pdf", raw)
	openapi3filter.RegisterBodyDecoder("*/*", raw)
}

func newContract(t *testing.T, w *apptest.Ward) *contract {
	t.Helper()
	r := w.Do(t, "GET", "/api/openapi.json", "", nil)
	if r.Status != 200 {
		t.Fatalf("openapi.json: %d %s", r.Status, r.Body)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(r.Body)
	if err != nil {
		t.Fatalf("load openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("document is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &contract{t: t, w: w, doc: doc, router: router, seen: map[string]bool{}}
}

// reply is an answer checked against the contract.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r *reply) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("not JSON (%v): %.300s", err, r.Body)
	}
}

// do sends a request and validates it and its answer against the document.
func (c *contract) do(method, path, token, contentType string, body []byte, headers ...string) *reply {
	t := c.t
	t.Helper()
	req, err := http.NewRequest(method, c.w.Server.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body == nil {
		req, _ = http.NewRequest(method, c.w.Server.URL+path, nil)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s: not in the OpenAPI document: %v", method, path, err)
	}
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true,
		IncludeResponseStatus: true, SchemaValidationOptions: []openapi3.SchemaValidationOption{openapi3.EnableJSONSchema2020()}}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	// A request the test makes invalid on purpose is still sent, but its
	// validation result is what the caller expects to be refused.
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if body != nil {
		req.Body = io.NopCloser(bytes.NewReader(body))
	}
	resp, err := c.w.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	out := &reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if reqErr != nil && resp.StatusCode < 400 {
		t.Errorf("%s %s: the document refuses the request (%v) but the server answered %d", method, path, reqErr, resp.StatusCode)
	}
	rin := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	rin.SetBodyBytes(b)
	if err := openapi3filter.ValidateResponse(context.Background(), rin); err != nil {
		t.Errorf("%s %s: answer %d does not match the document: %v\n%.400s", method, path, resp.StatusCode, err, b)
	}
	c.mu.Lock()
	c.seen[route.Operation.OperationID] = true
	c.mu.Unlock()
	return out
}

func (c *contract) json(method, path, token string, v any, headers ...string) *reply {
	c.t.Helper()
	var body []byte
	ct := ""
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			c.t.Fatal(err)
		}
		body, ct = b, "application/json"
	}
	return c.do(method, path, token, ct, body, headers...)
}

// multipart builds a POST /documents form.
func multipartForm(t *testing.T, fields map[string]string, fileType string, content []byte) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="scan.pdf"`)
	h.Set("Content-Type", fileType)
	fw, err := mw.CreatePart(h)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(content)
	mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// everyOperation fails the test for each documented operation no request
// exercised.
func (c *contract) everyOperation() {
	c.t.Helper()
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			if !c.seen[op.OperationID] {
				c.t.Errorf("%s %s (%s) was never exercised against the contract", method, path, op.OperationID)
			}
		}
	}
}

var _ = fmt.Sprint
