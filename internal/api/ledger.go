package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
)

// Ledger serves what makes the audit ledger verifiable without trusting
// the database (docs/ledger.md). Proofs are JSON values with base64
// hashes.
type Ledger interface {
	LatestCheckpointNote(ctx context.Context) ([]byte, error)
	PublicKeys(ctx context.Context) (string, error)
	InclusionProof(ctx context.Context, seq, size int64) (any, error)
	ConsistencyProof(ctx context.Context, from, to int64) (any, error)
}

// The ledger's routes:
//
//	GET /audit/checkpoint                          the latest signed checkpoint (text/plain, a C2SP signed note); public
//	GET /audit/checkpoint/keys                     the published verifier keys, one a line (text/plain); public
//	GET /audit/proof/inclusion?seq=N[&size=M]      inclusion proof of record N in the tree of M (default: the latest checkpoint's size); admin
//	GET /audit/proof/consistency?from=A[&to=B]     consistency proof from the tree of A to that of B (default: the latest); admin
//
// A checkpoint and the keys hold only a size, hashes and public keys:
// they are public so that witnesses and auditors can fetch them without
// an account. A proof names records by number and hashes, still no PHI,
// but it says how big the ledger is at any size: admins only, and each
// request is in the ledger.
func (s *Server) routeLedger(mux *http.ServeMux) {
	if s.opts.Ledger == nil {
		return
	}
	mux.HandleFunc("GET /audit/checkpoint", s.handleCheckpoint)
	mux.HandleFunc("GET /audit/checkpoint/keys", s.handleCheckpointKeys)
	mux.Handle("GET /audit/proof/inclusion", s.admin("audit-proof", s.handleInclusion))
	mux.Handle("GET /audit/proof/consistency", s.admin("audit-proof", s.handleConsistency))
	s.routeWitness(mux)
	mux.HandleFunc("/audit/{rest...}", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, problem.New(problem.ErrNotFound, "not-found", "no such audit endpoint; see /audit/checkpoint and /audit/proof/inclusion, /audit/proof/consistency"))
	})
}

func writeText(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (s *Server) handleCheckpoint(w http.ResponseWriter, r *http.Request) {
	b, err := s.opts.Ledger.LatestCheckpointNote(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeText(w, b)
}

func (s *Server) handleCheckpointKeys(w http.ResponseWriter, r *http.Request) {
	k, err := s.opts.Ledger.PublicKeys(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeText(w, []byte(k))
}

// proofParam reads a positive record count from the query; absent is 0
// (the default) when optional.
func proofParam(r *http.Request, name string, required bool) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		if required {
			return 0, problem.At(problem.ErrInvalid, "required", name, "the query parameter "+name+" is required")
		}
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, problem.At(problem.ErrInvalid, "value", name, "the query parameter "+name+" must be a positive integer")
	}
	return n, nil
}

func (s *Server) handleInclusion(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	seq, err := proofParam(r, "seq", true)
	if err != nil {
		return err
	}
	size, err := proofParam(r, "size", false)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.RecordAdmin(r.Context(), a, subj.Tenant, "audit-proof", ""); err != nil {
		return err
	}
	p, err := s.opts.Ledger.InclusionProof(r.Context(), seq, size)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (s *Server) handleConsistency(w http.ResponseWriter, r *http.Request, subj authz.Subject, a authn.Actor) error {
	from, err := proofParam(r, "from", true)
	if err != nil {
		return err
	}
	to, err := proofParam(r, "to", false)
	if err != nil {
		return err
	}
	if err := s.opts.Admin.RecordAdmin(r.Context(), a, subj.Tenant, "audit-proof", ""); err != nil {
		return err
	}
	p, err := s.opts.Ledger.ConsistencyProof(r.Context(), from, to)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
