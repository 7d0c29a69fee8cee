package records

import (
	"context"
	"errors"
	"fmt"

	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
)

// Explain translates q for tenant exactly as a search would and returns the
// database's plan for it (for the count if q asks for _summary=count;
// o's other options: see store.ExplainOptions). It
// reads no resource and discloses nothing but the plan, so it is not a PHI
// access; it is for operators and for the tests that check index use.
func (s *Service) Explain(ctx context.Context, tenant string, q *query.Query, o store.ExplainOptions) ([]string, error) {
	ex, ok := s.st.(store.Explainer)
	if !ok {
		return nil, fmt.Errorf("%w: this store cannot explain queries", problem.ErrUnavailable)
	}
	k, err := s.keyer(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sq, err := search.Plan(q, tenant, k, s.search)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, problem.New(problem.ErrInvalid, "invalid", qe.Error())
		}
		return nil, err
	}
	sq.Types = []string{q.Type}
	if q.Type == "" {
		sq.Types = q.Types
	}
	sq.Limit = q.Count + 1
	o.Count = q.Summary == "count"
	return ex.Explain(ctx, *sq, o)
}
