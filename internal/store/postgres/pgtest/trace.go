package pgtest

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/wardhealth/ward/internal/store/postgres"
)

// Statements counts the statements that the stores opened while it is
// installed (Trace) send to the server: each is at least one round trip.
type Statements struct {
	mu  sync.Mutex
	sql []string
}

var _ pgx.QueryTracer = (*Statements)(nil)

// TraceQueryStart records the statement's text.
func (s *Statements) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	s.sql = append(s.sql, d.SQL)
	s.mu.Unlock()
	return ctx
}

// TraceQueryEnd does nothing.
func (s *Statements) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Mark is the count so far, for Since.
func (s *Statements) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sql)
}

// Since returns the statements sent after mark whose text contains
// every one of parts.
func (s *Statements) Since(mark int, parts ...string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
next:
	for _, q := range s.sql[mark:] {
		for _, p := range parts {
			if !strings.Contains(q, p) {
				continue next
			}
		}
		out = append(out, q)
	}
	return out
}

// Trace installs a new Statements as the tracer of every store opened
// until the test ends (postgres.Pool.Tracer). Tests that use it must not
// run in parallel with others that open stores.
func Trace(t testing.TB) *Statements {
	s := &Statements{}
	old := postgres.Pool.Tracer
	postgres.Pool.Tracer = s
	t.Cleanup(func() { postgres.Pool.Tracer = old })
	return s
}
