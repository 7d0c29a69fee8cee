// Package apptest runs a whole Ward (the real handler chain, a real
// database, a real listener) for tests and benchmarks, with one user per
// role and their tokens.
package apptest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/store/postgres/pgtest"
	"github.com/wardhealth/ward/internal/store/storetest"
)

// Password is every test user's password.
const Password = "correct horse battery staple"

// Backend names a database.
type Backend string

// The backends.
const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// Backends lists both.
var Backends = []Backend{SQLite, Postgres}

// Ward is a running server.
type Ward struct {
	App     *app.App
	Server  *httptest.Server
	URL     string // FHIR base: Server.URL + "/fhir"
	Config  config.Config
	Tokens  map[authz.Role]string
	UserIDs map[authz.Role]string
	Log     *SyncBuffer
	Backend Backend
}

// SyncBuffer is a goroutine-safe log sink.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestKey is a fixed KEK for PostgreSQL tests.
var TestKey = base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))

// Start runs Ward on backend (skipping PostgreSQL when unreachable, as
// pgtest decides) with users of every role.
func Start(t testing.TB, backend Backend, mutate ...func(*config.Config)) *Ward {
	t.Helper()
	return StartWith(t, backend, nil, mutate...)
}

// StartWith is Start with app options (e.g. app.WithCacheTTL).
func StartWith(t testing.TB, backend Backend, opts []app.Option, mutate ...func(*config.Config)) *Ward {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	if backend == Postgres {
		cfg.DatabaseURL = pgtest.URL(t)
		cfg.Key = TestKey
	}
	for _, m := range mutate {
		m(&cfg)
	}
	w := run(t, backend, cfg, opts)
	for _, role := range authz.Roles {
		name := string(role) + "-user"
		u := &store.User{Practitioner: Links[role].Practitioner, Patient: Links[role].Patient}
		w.UserIDs[role] = AddLinkedUser(t, w.App.Store, cfg.Tenant, name, role, u)
		w.Tokens[role] = w.Login(t, name, Password)
	}
	return w
}

// Join runs another node of first's cluster: the same database and key
// (first's configuration, then mutate), its own process state and
// listener, and first's users, logged in on this node.
func Join(t testing.TB, first *Ward, opts []app.Option, mutate ...func(*config.Config)) *Ward {
	t.Helper()
	if first.Backend != Postgres {
		t.Fatal("apptest.Join: nodes share a database only on PostgreSQL")
	}
	cfg := first.Config
	cfg.DataDir = filepath.Join(t.TempDir(), "ward-data")
	for _, m := range mutate {
		m(&cfg)
	}
	w := run(t, first.Backend, cfg, opts)
	for role, id := range first.UserIDs {
		w.UserIDs[role] = id
		w.Tokens[role] = w.Login(t, string(role)+"-user", Password)
	}
	return w
}

// Reopen runs a node on cfg (e.g. a restored database of first's) and
// logs first's users in on it.
func Reopen(t testing.TB, first *Ward, cfg config.Config) *Ward {
	t.Helper()
	w := run(t, first.Backend, cfg, nil)
	for role, id := range first.UserIDs {
		w.UserIDs[role] = id
		w.Tokens[role] = w.Login(t, string(role)+"-user", Password)
	}
	return w
}

func run(t testing.TB, backend Backend, cfg config.Config, opts []app.Option) *Ward {
	t.Helper()
	logs := &SyncBuffer{}
	var sink io.Writer = logs
	if _, bench := t.(*testing.B); bench {
		// Benchmarks would otherwise measure an ever-growing log buffer.
		sink = io.Discard
	}
	ctx := context.Background()
	a, err := app.Open(ctx, cfg, slog.New(slog.NewJSONHandler(sink, nil)), io.Discard, opts...)
	if err != nil {
		t.Fatalf("start ward: %v", err)
	}
	a.StartWorkers()
	srv := httptest.NewServer(a.Handler)
	w := &Ward{App: a, Server: srv, URL: srv.URL + "/fhir", Config: cfg, Tokens: map[authz.Role]string{}, UserIDs: map[authz.Role]string{}, Log: logs, Backend: backend}
	t.Cleanup(func() {
		srv.Close()
		a.Close()
	})
	return w
}

// Link is the FHIR resource a test user is.
type Link struct{ Practitioner, Patient string }

// Links are the links of the users Start creates: the physician and the
// nurse are Practitioners, the user-role account is a Patient. The
// resources themselves are not created; a test that needs a care
// relationship writes it (e.g. a Patient naming the Practitioner as
// generalPractitioner).
var Links = map[authz.Role]Link{
	authz.RolePhysician: {Practitioner: "pract-physician"},
	authz.RoleNurse:     {Practitioner: "pract-nurse"},
	authz.RoleUser:      {Patient: "patient-user"},
}

// hashOnce caches the argon2id hash of Password: hashing costs ~50 ms.
var hashOnce = sync.OnceValues(func() (string, error) { return authn.HashPassword(Password) })

// AddUser creates a user with Password, as `ward users add` does.
func AddUser(t testing.TB, st store.Store, tenant, username string, role authz.Role) string {
	t.Helper()
	return AddLinkedUser(t, st, tenant, username, role, &store.User{})
}

// AddLinkedUser creates a user with Password and the links and clearances
// of tmpl (as `ward users add --practitioner/--patient/--clearance`).
func AddLinkedUser(t testing.TB, st store.Store, tenant, username string, role authz.Role, tmpl *store.User) string {
	t.Helper()
	h, err := hashOnce()
	if err != nil {
		t.Fatal(err)
	}
	u := &store.User{ID: uuid.NewString(), Tenant: tenant, Username: username, Role: string(role), PasswordHash: h, Created: time.Now().UTC(),
		Practitioner: tmpl.Practitioner, Patient: tmpl.Patient, Clearances: tmpl.Clearances}
	if err := store.NewRecorder(st).Commit(context.Background(), &store.Unit{Parts: []store.Part{store.NewUser{User: u}}}, &audit.Record{Time: u.Created, Tenant: tenant, Actor: "test", Role: "system", Action: "user-add", Entities: []string{"user/" + u.ID}}); err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// Login runs the password grant.
func (w *Ward) Login(t testing.TB, username, password string) string {
	t.Helper()
	resp, err := http.PostForm(w.Server.URL+"/oauth2/token", url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || json.Unmarshal(body, &out) != nil || out.AccessToken == "" {
		t.Fatalf("login %s: %d %s%s", username, resp.StatusCode, body, w.errorLines())
	}
	return out.AccessToken
}

// errorLines are the server's error log lines so far, for a failure
// message.
func (w *Ward) errorLines() string {
	var b strings.Builder
	for _, l := range strings.Split(w.Log.String(), "\n") {
		if strings.Contains(l, `"level":"ERROR"`) {
			b.WriteString("\n\t")
			b.WriteString(l)
		}
	}
	return b.String()
}

// Response is a finished HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r *Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %.300s", err, r.Body)
	}
	return m
}

// Do sends a request to path (relative to the server root, e.g.
// "/fhir/Patient") with token and extra headers ("Name: value").
func (w *Ward) Do(t testing.TB, method, path, token string, body []byte, headers ...string) *Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, w.Server.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Set(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// Create posts a resource as role and returns its id.
func (w *Ward) Create(t testing.TB, role authz.Role, body string) string {
	t.Helper()
	var probe struct {
		ResourceType string `json:"resourceType"`
	}
	json.Unmarshal([]byte(body), &probe)
	r := w.Do(t, "POST", "/fhir/"+probe.ResourceType, w.Tokens[role], []byte(body))
	if r.Status != 201 {
		t.Fatalf("create %s: %d %s", probe.ResourceType, r.Status, r.Body)
	}
	id, _ := r.JSON(t)["id"].(string)
	if id == "" {
		t.Fatalf("create returned no id: %s", r.Body)
	}
	return id
}

// Ledger returns every audit record.
func (w *Ward) Ledger(t testing.TB) []*audit.Record {
	t.Helper()
	return storetest.Records(t, w.App.Store)
}

// PostForm sends a form to path as the client address from (named in
// X-Forwarded-For, as the trusted loopback proxy would; "" sends none) and
// returns the answer.
func (w *Ward) PostForm(t testing.TB, path, from string, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", w.Server.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if from != "" {
		req.Header.Set("X-Forwarded-For", from)
	}
	resp, err := w.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}
