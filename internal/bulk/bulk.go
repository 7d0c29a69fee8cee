// Package bulk runs FHIR Bulk Data exports (Bulk Data Access 2.0): the
// jobs, the worker that writes their NDJSON output, and the downloads.
//
// Guarantees:
//   - Output is never held whole in memory and never written in the clear:
//     resources stream from the records layer a page at a time into chunks
//     of at most ChunkBytes of NDJSON, each sealed (AES-256-GCM under the
//     tenant's data key; associated data binds tenant, job, part and chunk,
//     so a chunk moved to another place does not open) before it is stored.
//   - Access is decided by the records layer for the requester as at
//     kick-off, per type; only the requester (same tenant and subject id,
//     with a valid token) sees the job's status and files; anyone else is
//     told the job does not exist.
//   - A file's ledger record, naming every resource version in it, is
//     durable before the first byte of the file is sent.
//   - A job runs on one node at a time: it is claimed with a
//     compare-and-set and held by a lease the worker renews. A job whose
//     node died is claimed again when its lease runs out and restarts from
//     the beginning (its partial output is deleted first), up to
//     MaxAttempts; then it is marked failed.
//   - A de-identified export (_deidentify) writes only de-identified
//     resources (internal/deid; never the identified ones, not even
//     sealed), needs the research purpose of use at kick-off and decides
//     as that purpose when it runs (so only patients whose research
//     consent permits it are read); each file's download is a
//     deidentified-disclosure naming the method, project and patients.
//     Every job runs with its requester's purpose of use at kick-off.
//   - Jobs and their output are deleted when they expire (TTL after they
//     finish) or when the requester cancels them.
package bulk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/deid"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/seal"
	"github.com/wardhealth/ward/internal/store"
)

// Store is the job storage (implemented by sqlstore.DB).
type Store interface {
	CreateExportJob(ctx context.Context, j *store.ExportJob) error
	ExportJob(ctx context.Context, tenant, id string) (*store.ExportJob, error)
	ClaimExportJob(ctx context.Context, owner string, now, lease time.Time) (*store.ExportJob, error)
	RenewExportJob(ctx context.Context, id, owner string, lease time.Time, progress string) error
	ResetExportJob(ctx context.Context, id, owner string, lease time.Time) error
	AddExportChunk(ctx context.Context, id, owner string, lease time.Time, part, chunk int, body []byte) error
	AddExportPart(ctx context.Context, id, owner string, lease time.Time, p store.ExportPart) error
	FinishExportJob(ctx context.Context, id, owner, status, reason string, expires time.Time) error
	ExportParts(ctx context.Context, id string) ([]store.ExportPart, error)
	ExportPart(ctx context.Context, id string, part int) (*store.ExportPart, error)
	ExportChunk(ctx context.Context, id string, part, chunk int) ([]byte, error)
	DeleteExportJob(ctx context.Context, tenant, id string) (bool, error)
	SweepExportJobs(ctx context.Context, now time.Time) (int, error)
}

// Keys seals and opens under a tenant's data key.
type Keys interface {
	DataKey(ctx context.Context, tenant string) (string, error)
	Seal(keyID string, plaintext, aad []byte) ([]byte, error)
	Open(envelope, aad []byte) ([]byte, error)
}

// Options tune the service; zero values take the defaults.
type Options struct {
	// TTL is how long a finished job's output is kept (WARD_EXPORT_TTL).
	TTL time.Duration
	// Poll is how often an idle worker looks for jobs; Sweep how often
	// expired jobs are deleted.
	Poll, Sweep time.Duration
	// Lease is how long a claim holds without renewal.
	Lease time.Duration
	// MaxLines and MaxBytes bound one output file; ChunkBytes one sealed
	// chunk of it.
	MaxLines   int
	MaxBytes   int64
	ChunkBytes int
	// MaxAttempts bounds the runs of a job interrupted by restarts.
	MaxAttempts int
	Now         func() time.Time
	NewID       func() string
	Log         *slog.Logger
	// ProjectKey returns a research project's de-identification key
	// (derived, never stored); nil refuses de-identified exports.
	ProjectKey func(ctx context.Context, tenant, project string) ([]byte, error)
}

// Defaults. A file holds at most 10,000 resources (so the ledger record of
// its download, which names each one, stays well under a megabyte) or
// 64 MiB.
const (
	DefaultTTL        = 24 * time.Hour
	DefaultMaxLines   = 10000
	DefaultMaxBytes   = 64 << 20
	DefaultChunkBytes = 1 << 20
)

// Service runs export jobs.
type Service struct {
	st    Store
	rec   *records.Service
	keys  Keys
	o     Options
	owner string

	// exec runs asynchronous requests (SetExecutor).
	exec atomic.Pointer[Executor]

	mu      sync.Mutex
	cancel  context.CancelFunc
	stopped chan struct{}
	wake    chan struct{}
}

// New returns a Service; Start runs its worker.
func New(st Store, rec *records.Service, keys Keys, o Options) *Service {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Sweep <= 0 {
		o.Sweep = time.Minute
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.MaxLines <= 0 {
		o.MaxLines = DefaultMaxLines
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.ChunkBytes <= 0 {
		o.ChunkBytes = DefaultChunkBytes
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.NewID == nil {
		o.NewID = func() string { return uuid.Must(uuid.NewRandomFromReader(rand.Reader)).String() }
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{st: st, rec: rec, keys: keys, o: o, owner: "node-" + o.NewID(), wake: make(chan struct{}, 1)}
}

// ErrNoJob is returned for a job that does not exist, expired, or is not
// the caller's: the three are not told apart.
var ErrNoJob = problem.New(problem.ErrNotFound, "not-found", "no such export job (unknown, expired, cancelled, or not yours)")

// Kickoff queues an export for the repository's caller: access is decided
// and the kick-off audited (records.ExportKickoff) before the job exists.
func (s *Service) Kickoff(ctx context.Context, repo *records.Repo, req Request) (*store.ExportJob, error) {
	id := s.o.NewID()
	var types []string
	var err error
	if req.Deidentify != "" {
		if s.o.ProjectKey == nil {
			return nil, problem.New(problem.ErrUnavailable, "not-supported", "de-identified export is not configured on this server")
		}
		types, err = repo.DeidentifiedExportKickoff(ctx, id, req.Kind, req.GroupID, req.Types)
	} else {
		types, err = repo.ExportKickoff(ctx, id, req.Kind, req.GroupID, req.Types)
	}
	if err != nil {
		return nil, err
	}
	subj := repo.Subject()
	now := s.o.Now().UTC()
	j := &store.ExportJob{ID: id, Tenant: subj.Tenant, Requester: subj.ID, Role: string(subj.Role), Scopes: subj.Scopes,
		Kind: req.Kind, GroupID: req.GroupID, Types: types, Since: req.Since, Request: req.Query(),
		Status: store.ExportQueued, Progress: "queued", Created: now, TxTime: now, Expires: now.Add(s.o.TTL),
		Purpose: subj.Purpose, Deidentify: req.Deidentify, Project: req.Project}
	if err := s.st.CreateExportJob(ctx, j); err != nil {
		return nil, store.Problem(err)
	}
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return j, nil
}

// Job returns the caller's job and its files (ErrNoJob if it is not the
// caller's or has expired).
func (s *Service) Job(ctx context.Context, subj authz.Subject, id string) (*store.ExportJob, []store.ExportPart, error) {
	j, err := s.job(ctx, subj, id)
	if err != nil {
		return nil, nil, err
	}
	if j.Status != store.ExportCompleted {
		return j, nil, nil
	}
	parts, err := s.st.ExportParts(ctx, id)
	if err != nil {
		return nil, nil, store.Problem(err)
	}
	return j, parts, nil
}

func (s *Service) job(ctx context.Context, subj authz.Subject, id string) (*store.ExportJob, error) {
	if !validJobID(id) {
		return nil, ErrNoJob
	}
	j, err := s.st.ExportJob(ctx, subj.Tenant, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, ErrNoJob
	case err != nil:
		return nil, store.Problem(err)
	}
	if j.Requester != subj.ID || j.Tenant != subj.Tenant || !j.Expires.After(s.o.Now()) {
		return nil, ErrNoJob
	}
	return j, nil
}

func validJobID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

// Cancel deletes the caller's job and its output (audited).
func (s *Service) Cancel(ctx context.Context, repo *records.Repo, id string) error {
	if _, err := s.job(ctx, repo.Subject(), id); err != nil {
		return err
	}
	if err := repo.AuditExport(ctx, "export-cancel", id); err != nil {
		return err
	}
	ok, err := s.st.DeleteExportJob(ctx, repo.Subject().Tenant, id)
	if err != nil {
		return store.Problem(err)
	}
	if !ok {
		return ErrNoJob
	}
	return nil
}

// Download writes one output file of the caller's completed job to w,
// unsealed, after the ledger record naming its resources is durable.
// start is called once, before the first byte, with the file's line count
// (to set headers). An error after start was called means the file was
// cut short; the caller must abort the response.
func (s *Service) Download(ctx context.Context, repo *records.Repo, id string, part int, w io.Writer, start func(lines int)) (started bool, err error) {
	j, err := s.job(ctx, repo.Subject(), id)
	if err != nil {
		return false, err
	}
	if j.Status != store.ExportCompleted {
		return false, ErrNoJob
	}
	p, err := s.st.ExportPart(ctx, id, part)
	if errors.Is(err, store.ErrNotFound) {
		return false, ErrNoJob
	} else if err != nil {
		return false, store.Problem(err)
	}
	if j.Deidentify != "" {
		err = repo.DiscloseDeidentifiedExport(ctx, id, part, p.Type, j.Deidentify, j.Project, j.Purpose, p.Refs)
	} else {
		err = repo.DiscloseExport(ctx, id, part, p.Type, p.Refs)
	}
	if err != nil {
		return false, err
	}
	p.Refs = nil
	start(p.Lines)
	for c := 0; ; c++ {
		env, err := s.st.ExportChunk(ctx, id, part, c)
		if errors.Is(err, store.ErrNotFound) {
			return true, nil
		} else if err != nil {
			return true, err
		}
		plain, err := s.keys.Open(env, chunkAAD(j.Tenant, id, part, c))
		if err != nil {
			return true, fmt.Errorf("open export chunk %s/%d/%d: %w", id, part, c, err)
		}
		if _, err := w.Write(plain); err != nil {
			return true, err
		}
	}
}

// chunkAAD binds a sealed chunk to its tenant, job, part and position.
// "bulk-export" is not a resource type, so the associated data can never
// equal a resource version's.
func chunkAAD(tenant, job string, part, chunk int) []byte {
	return seal.AAD(tenant, "bulk-export", job+"/"+strconv.Itoa(part), int64(chunk))
}

// Start runs the worker (claiming and running jobs, sweeping expired ones)
// until Stop.
func (s *Service) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.stopped = cancel, make(chan struct{})
	go s.loop(ctx)
}

// Stop stops the worker and waits for it. A job it was running stays
// claimed until its lease runs out; then any node restarts it.
func (s *Service) Stop() {
	s.mu.Lock()
	cancel, stopped := s.cancel, s.stopped
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-stopped
	}
}

func (s *Service) loop(ctx context.Context) {
	defer close(s.stopped)
	poll := time.NewTicker(s.o.Poll)
	defer poll.Stop()
	lastSweep := time.Time{}
	for {
		if time.Since(lastSweep) >= s.o.Sweep {
			if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
				s.o.Log.Error("export sweep", "error", err.Error())
			} else if n > 0 {
				s.o.Log.Info("export sweep", "jobs_deleted", n)
			}
			lastSweep = time.Now()
		}
		for ctx.Err() == nil {
			ran, err := s.RunOnce(ctx)
			if err != nil && ctx.Err() == nil {
				s.o.Log.Error("export worker", "error", err.Error())
			}
			if !ran {
				break
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
		case <-s.wake:
		}
	}
}

// Sweep deletes expired jobs and their output.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	return s.st.SweepExportJobs(ctx, s.o.Now())
}

// RunOnce claims one job and runs it to its end; false if there was none.
func (s *Service) RunOnce(ctx context.Context) (bool, error) {
	now := s.o.Now()
	j, err := s.st.ClaimExportJob(ctx, s.owner, now, now.Add(s.o.Lease))
	if err != nil || j == nil {
		return false, err
	}
	log := s.o.Log.With("job", j.ID, "attempt", j.Attempts)
	if j.Attempts > s.o.MaxAttempts {
		log.Error("export job interrupted too often; failed")
		return true, s.finish(j, store.ExportFailed, fmt.Sprintf("the export was interrupted %d times", j.Attempts-1))
	}
	jctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The heartbeat renews the lease; losing it (cancelled, or claimed by
	// another node after a stall) stops the run.
	progress := make(chan string, 1)
	hbDone := make(chan struct{})
	var lost atomic.Bool // the lease was lost: cancelled or claimed elsewhere
	go func() {
		defer close(hbDone)
		t := time.NewTicker(s.o.Lease / 3)
		defer t.Stop()
		text := "starting"
		for {
			select {
			case <-jctx.Done():
				return
			case text = <-progress:
			case <-t.C:
			}
			if err := s.st.RenewExportJob(jctx, j.ID, s.owner, s.o.Now().Add(s.o.Lease), text); err != nil {
				if errors.Is(err, store.ErrConflict) {
					lost.Store(true)
					cancel()
					return
				}
			}
		}
	}()
	err = s.run(jctx, j, func(p string) {
		select {
		case progress <- p:
		default:
		}
	})
	cancel()
	<-hbDone
	switch {
	case err == nil:
		log.Info("export job completed")
		return true, s.finish(j, store.ExportCompleted, "")
	case errors.Is(err, store.ErrConflict) || ctx.Err() == nil && lost.Load():
		// (jctx itself is always done here: cancel ran above. Telling a
		// failure from a lost lease by it made every failed run "given
		// up", and the job ran again until its attempts were used up.)
		// Cancelled or taken over: nothing more to do here.
		log.Info("export job given up", "why", "cancelled or claimed elsewhere")
		return true, nil
	case ctx.Err() != nil:
		return true, nil // stopping: the lease runs out and the job is restarted
	default:
		log.Error("export job failed", "error", err.Error())
		reason := "the export failed on the server"
		if errors.Is(err, problem.ErrForbidden) {
			reason = ReasonRefused
		}
		return true, s.finish(j, store.ExportFailed, reason)
	}
}

func (s *Service) finish(j *store.ExportJob, status, reason string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err := s.st.FinishExportJob(ctx, j.ID, s.owner, status, reason, s.o.Now().Add(s.o.TTL))
	if errors.Is(err, store.ErrConflict) {
		return nil // cancelled meanwhile
	}
	return err
}

// run writes the job's output, type by type.
func (s *Service) run(ctx context.Context, j *store.ExportJob, progress func(string)) error {
	lease := func() time.Time { return s.o.Now().Add(s.o.Lease) }
	if err := s.st.ResetExportJob(ctx, j.ID, s.owner, lease()); err != nil {
		return err
	}
	subj, err := s.subject(ctx, j)
	if err != nil {
		return err
	}
	if j.Kind == KindAsync {
		return s.runAsync(ctx, j, subj, progress)
	}
	repo := s.rec.For(subj, "export-"+j.ID)
	var members []string
	if j.Kind == records.ExportPatient && subj.Role == authz.RoleUser {
		// A patient's Patient-level export is their own compartment.
		members = []string{subj.Patient}
	}
	if j.Kind == records.ExportGroup {
		var err error
		if members, err = repo.GroupMembers(ctx, j.GroupID); err != nil {
			return err
		}
		if members == nil {
			members = []string{}
		}
	}
	keyID, err := s.keys.DataKey(ctx, j.Tenant)
	if err != nil {
		return fmt.Errorf("%w: data key: %v", problem.ErrUnavailable, err)
	}
	w := &partWriter{s: s, j: j, keyID: keyID, lease: lease, ctx: ctx}
	if j.Deidentify != "" {
		if w.deid, err = s.deidentifier(ctx, j); err != nil {
			return err
		}
	}
	for i, typ := range j.Types {
		progress(fmt.Sprintf("%s (type %d of %d)", typ, i+1, len(j.Types)))
		w.typ = typ
		q := records.ExportQuery{Type: typ, Since: j.Since, Until: j.TxTime, Patients: members}
		if err := repo.Export(ctx, q, w.add); err != nil {
			return err
		}
		if err := w.closePart(); err != nil {
			return err
		}
	}
	return nil
}

// A job's status once it has ended, as Job reports it.
const (
	StatusCompleted = store.ExportCompleted
	StatusFailed    = store.ExportFailed
)

// ReasonRefused is the failure reason of a job whose requester was refused
// access when it ran (the status URL answers it with 403, not 500).
const ReasonRefused = "access to a requested type was refused when the export ran"

// userStore is the job store's optional capability to look up the
// requester's account.
type userStore interface {
	UserByID(ctx context.Context, id string) (*store.User, error)
}

// subject is the export's requester as the decisions see it: role and
// scopes as at kick-off, and the account's links (the Practitioner a
// clinician is, the Patient a patient user is) and clearances as they are
// now, without which every clinician and patient decision refuses.
func (s *Service) subject(ctx context.Context, j *store.ExportJob) (authz.Subject, error) {
	subj := authz.Subject{Tenant: j.Tenant, ID: j.Requester, Role: authz.Role(j.Role), Scopes: j.Scopes, Purpose: j.Purpose}
	us, ok := s.st.(userStore)
	if !ok || subj.Role == authz.RoleClient {
		return subj, nil
	}
	u, err := us.UserByID(ctx, j.Requester)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not a local account (an external identity): no links are known,
		// and the decisions refuse what needs them.
		return subj, nil
	case err != nil:
		return subj, store.Problem(err)
	case u.Disabled || u.Tenant != j.Tenant:
		return subj, problem.New(problem.ErrForbidden, "forbidden", "access denied by policy")
	}
	subj.Practitioner, subj.Patient, subj.Clearances = u.Practitioner, u.Patient, u.Clearances
	return subj, nil
}

// partWriter cuts a type's resources into files of bounded size and each
// file into sealed chunks, writing each chunk as soon as it is full.
type partWriter struct {
	s     *Service
	j     *store.ExportJob
	keyID string
	lease func() time.Time
	ctx   context.Context

	// deid, when set, de-identifies each resource before it is written.
	deid *deid.Deidentifier

	typ   string
	part  int // number of the current (open) part
	open  bool
	chunk int
	buf   bytes.Buffer
	lines int
	bytes int64
	refs  []string
}

func (w *partWriter) add(res records.Resource) error {
	line := res.JSON
	if w.deid != nil {
		var err error
		if line, err = deidentify(w.deid, res); err != nil {
			return err
		}
	}
	if bytes.IndexByte(line, '\n') >= 0 {
		var b bytes.Buffer
		if err := json.Compact(&b, line); err != nil {
			return fmt.Errorf("compact %s: %w", res.Type, err)
		}
		line = b.Bytes()
	}
	if !w.open {
		w.open, w.chunk, w.lines, w.bytes, w.refs = true, 0, 0, 0, w.refs[:0]
	}
	w.buf.Write(line)
	w.buf.WriteByte('\n')
	w.lines++
	w.bytes += int64(len(line)) + 1
	w.refs = append(w.refs, records.ExportRef(res))
	if w.buf.Len() >= w.s.o.ChunkBytes {
		if err := w.flushChunk(); err != nil {
			return err
		}
	}
	if w.lines >= w.s.o.MaxLines || w.bytes >= w.s.o.MaxBytes {
		return w.closePart()
	}
	return nil
}

func (w *partWriter) flushChunk() error {
	if w.buf.Len() == 0 {
		return nil
	}
	env, err := w.s.keys.Seal(w.keyID, w.buf.Bytes(), chunkAAD(w.j.Tenant, w.j.ID, w.part, w.chunk))
	if err != nil {
		return fmt.Errorf("seal export chunk: %w", err)
	}
	if err := w.s.st.AddExportChunk(w.ctx, w.j.ID, w.s.owner, w.lease(), w.part, w.chunk, env); err != nil {
		return err
	}
	w.chunk++
	w.buf.Reset()
	return nil
}

func (w *partWriter) closePart() error {
	if !w.open {
		return nil
	}
	if err := w.flushChunk(); err != nil {
		return err
	}
	p := store.ExportPart{Part: w.part, Type: w.typ, Lines: w.lines, Bytes: w.bytes, Refs: w.refs}
	if err := w.s.st.AddExportPart(w.ctx, w.j.ID, w.s.owner, w.lease(), p); err != nil {
		return err
	}
	w.part++
	w.open = false
	return nil
}
