package bulk

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/store"
)

// The asynchronous request pattern (FHIR R4 async.html) for requests
// other than $export: a search or $everything sent with Prefer:
// respond-async is queued as a job of KindAsync and run by the same
// worker, leases and sweeper as an export, as its requester. The request
// itself (a URL whose parameters may be PHI) is sealed in the job's
// request column, never stored in the clear; the result, a Bundle, is
// sealed in the job's chunks like an export file. Access is decided and
// audited at kick-off, when the request runs (as the requester, exactly as
// the same request sent synchronously), and again at download, whose
// ledger record names every resource in the result before it is sent.

// KindAsync is the kind of a job that runs one asynchronous request.
const KindAsync = "async"

// sealedPrefix marks a job's request column that holds a sealed request.
const sealedPrefix = "sealed:"

// Executor answers one FHIR GET request (a URL relative to the FHIR base)
// for subj as the API answers it synchronously, with base as the base of
// the links in the answer: its status and FHIR JSON body.
type Executor func(ctx context.Context, subj authz.Subject, base, request string) (status int, body []byte, err error)

// asyncRequest is what a job of KindAsync seals.
type asyncRequest struct {
	Base    string `json:"base"`
	Request string `json:"request"`
}

// SetExecutor sets the function that runs asynchronous requests (the API
// server's, set by the wiring once the server exists); without one,
// KickoffAsync refuses.
func (s *Service) SetExecutor(e Executor) { s.exec.Store(&e) }

func (s *Service) executor() Executor {
	if e := s.exec.Load(); e != nil {
		return *e
	}
	return nil
}

// asyncAAD binds a sealed request to its tenant and job.
func asyncAAD(tenant, job string) []byte { return chunkAAD(tenant, job+"/request", -1, 0) }

// KickoffAsync queues request (relative to base) for the repository's
// caller. types are the resource types it reads (nil for a system-level
// search): the caller must be allowed to read them now (audited,
// records.AsyncKickoff) and again at download.
func (s *Service) KickoffAsync(ctx context.Context, repo *records.Repo, base, request string, types []string) (*store.ExportJob, error) {
	if s.executor() == nil {
		return nil, problem.New(problem.ErrUnavailable, "not-supported", "asynchronous requests are not configured on this server")
	}
	id := s.o.NewID()
	if err := repo.AsyncKickoff(ctx, id, types); err != nil {
		return nil, err
	}
	subj := repo.Subject()
	keyID, err := s.keys.DataKey(ctx, subj.Tenant)
	if err != nil {
		return nil, fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
	}
	plain, err := json.Marshal(asyncRequest{Base: base, Request: request})
	if err != nil {
		return nil, err
	}
	env, err := s.keys.Seal(keyID, plain, asyncAAD(subj.Tenant, id))
	if err != nil {
		return nil, fmt.Errorf("seal async request: %w", err)
	}
	now := s.o.Now().UTC()
	j := &store.ExportJob{ID: id, Tenant: subj.Tenant, Requester: subj.ID, Role: string(subj.Role), Scopes: subj.Scopes,
		Kind: KindAsync, Types: types, Request: sealedPrefix + base64.StdEncoding.EncodeToString(env),
		Status: store.ExportQueued, Progress: "queued", Created: now, TxTime: now, Expires: now.Add(s.o.TTL), Purpose: subj.Purpose}
	if err := s.st.CreateExportJob(ctx, j); err != nil {
		return nil, store.Problem(err)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return j, nil
}

// runAsync runs a job of KindAsync: the request, as its requester, and
// its answer sealed as part 0 (one Bundle).
func (s *Service) runAsync(ctx context.Context, j *store.ExportJob, subj authz.Subject, progress func(string)) error {
	exec := s.executor()
	if exec == nil {
		return errors.New("no executor for asynchronous requests")
	}
	env, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(j.Request, sealedPrefix))
	if err != nil || !strings.HasPrefix(j.Request, sealedPrefix) {
		return fmt.Errorf("async job %s: request is not sealed", j.ID)
	}
	plain, err := s.keys.Open(env, asyncAAD(j.Tenant, j.ID))
	if err != nil {
		return fmt.Errorf("open async request %s: %w", j.ID, err)
	}
	var req asyncRequest
	if err := json.Unmarshal(plain, &req); err != nil {
		return fmt.Errorf("async request %s: %w", j.ID, err)
	}
	progress("running")
	status, body, err := exec(ctx, subj, req.Base, req.Request)
	if err != nil {
		return err
	}
	out, refs, err := batchResponse(status, body)
	if err != nil {
		return err
	}
	keyID, err := s.keys.DataKey(ctx, j.Tenant)
	if err != nil {
		return fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
	}
	lease := func() time.Time { return s.o.Now().Add(s.o.Lease) }
	w := &partWriter{s: s, j: j, keyID: keyID, lease: lease, ctx: ctx, typ: "Bundle", open: true}
	w.lines, w.bytes, w.refs = 1, int64(len(out)), refs
	for len(out) > 0 {
		n := min(len(out), s.o.ChunkBytes)
		w.buf.Write(out[:n])
		out = out[n:]
		if err := w.flushChunk(); err != nil {
			return err
		}
	}
	return w.closePart()
}

// batchResponse wraps a request's answer as async.html's final answer to
// a non-bulk request: a batch-response Bundle whose one entry carries
// the answer (a result Bundle, or the OperationOutcome of a failure) and
// its status. It returns the resources the answer discloses, for the
// ledger ("Type/id/_history/v").
func batchResponse(status int, body []byte) ([]byte, []string, error) {
	var res struct {
		ResourceType string
		Entry        []struct {
			Resource struct {
				ResourceType, ID string
				Meta             struct{ VersionID string }
			}
		}
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, nil, fmt.Errorf("async answer is not JSON: %w", err)
	}
	var refs []string
	if res.ResourceType == "Bundle" {
		for _, e := range res.Entry {
			r := e.Resource
			if r.ResourceType == "" || r.ResourceType == "OperationOutcome" || r.ID == "" {
				continue
			}
			refs = append(refs, r.ResourceType+"/"+r.ID+"/_history/"+r.Meta.VersionID)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"batch-response","entry":[{"resource":`)
	b.Write(bytes.TrimSpace(body))
	b.WriteString(`,"response":{"status":`)
	st, _ := json.Marshal(strconv.Itoa(status) + " " + http.StatusText(status))
	b.Write(st)
	b.WriteString(`}}]}`)
	return b.Bytes(), refs, nil
}

// AsyncResult returns the caller's completed asynchronous job's answer
// (the batch-response Bundle), after deciding the caller may still read
// what the request read and recording the disclosure of every resource
// in it. It returns ErrNoJob for a job that is not the caller's, not an
// asynchronous request's, or not complete.
func (s *Service) AsyncResult(ctx context.Context, repo *records.Repo, id string) ([]byte, error) {
	j, err := s.job(ctx, repo.Subject(), id)
	if err != nil {
		return nil, err
	}
	if j.Kind != KindAsync || j.Status != store.ExportCompleted {
		return nil, ErrNoJob
	}
	p, err := s.st.ExportPart(ctx, id, 0)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoJob
	} else if err != nil {
		return nil, store.Problem(err)
	}
	if err := repo.DiscloseAsync(ctx, id, j.Types, p.Refs); err != nil {
		return nil, err
	}
	var out []byte
	for c := 0; ; c++ {
		env, err := s.st.ExportChunk(ctx, id, 0, c)
		if errors.Is(err, store.ErrNotFound) {
			return out, nil
		} else if err != nil {
			return nil, store.Problem(err)
		}
		plain, err := s.keys.Open(env, chunkAAD(j.Tenant, id, 0, c))
		if err != nil {
			return nil, fmt.Errorf("open async chunk %s/%d: %w", id, c, err)
		}
		out = append(out, plain...)
	}
}
