package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/witness"
)

// LedgerWitness is the optional capability of a Ledger that witnesses
// other logs (C2SP tlog-witness):
//
//	POST /audit/witness/add-checkpoint   old size, consistency proof, signed checkpoint -> cosignature lines; public
//	GET  /audit/witness/key              this node's witness verifier key (cosignature/v1); public
//
// Like a checkpoint, a request holds sizes, hashes and signatures only,
// and a log pushes it without an account: the checkpoint's signature by
// a configured log key is the authentication. A 409 answers the
// witness's size as text/x.tlog.size, as the protocol says; every other
// refusal is an OperationOutcome.
type LedgerWitness interface {
	WitnessAdd(ctx context.Context, body []byte) ([]byte, error)
	WitnessKey(ctx context.Context) (string, error)
}

func (s *Server) routeWitness(mux *http.ServeMux) {
	lw, ok := s.opts.Ledger.(LedgerWitness)
	if !ok {
		return
	}
	mux.HandleFunc("POST /audit/witness/"+witness.Path, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, witness.MaxRequest))
		if err != nil {
			s.writeError(w, r, problem.New(problem.ErrTooLarge, "too-costly", "the request body exceeds "+strconv.Itoa(witness.MaxRequest)+" bytes"))
			return
		}
		cos, err := lw.WitnessAdd(r.Context(), body)
		var ce *witness.ConflictError
		if errors.As(err, &ce) {
			w.Header().Set("Content-Type", witness.SizeType)
			w.WriteHeader(http.StatusConflict)
			w.Write([]byte(strconv.FormatUint(ce.Size, 10) + "\n"))
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeText(w, cos)
	})
	mux.HandleFunc("GET /audit/witness/key", func(w http.ResponseWriter, r *http.Request) {
		k, err := lw.WitnessKey(r.Context())
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		writeText(w, []byte(k))
	})
}
