package records

// FHIR Subscriptions (issue #27): what the records layer keeps for the
// delivery of notifications (internal/subscriptions). Who owns a
// Subscription is recorded with every version a caller writes, so that a
// notification is decided, at delivery, on the access of the subject who
// asked for it; and criteria are evaluated by this server's own search.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/fhir"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/search"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/store"
	"github.com/wardhealth/ward/internal/topics"
)

// SubscriptionsActor is the subject id of the subscription manager's own
// writes (status changes): they leave the recorded owner as it is.
const SubscriptionsActor = "system/subscriptions"

// owner is the recorded owner of a Subscription: ids and codes only.
type owner struct {
	ID           string   `json:"id"`
	Role         string   `json:"role"`
	Scopes       []string `json:"scopes,omitempty"`
	Practitioner string   `json:"practitioner,omitempty"`
	Patient      string   `json:"patient,omitempty"`
	Clearances   []string `json:"clearances,omitempty"`
}

// subscriptionOwners returns the part recording the caller as the owner
// of every Subscription among writes (nil: none). A deletion keeps the
// owner: a deleted Subscription delivers nothing.
func (r *Repo) subscriptionOwners(writes []store.Write) []store.Part {
	if r.subj.ID == SubscriptionsActor {
		return nil
	}
	var parts []store.Part
	for _, w := range writes {
		if w.Type != "Subscription" || w.Deleted {
			continue
		}
		b, err := json.Marshal(owner{ID: r.subj.ID, Role: string(r.subj.Role), Scopes: r.subj.Scopes,
			Practitioner: r.subj.Practitioner, Patient: r.subj.Patient, Clearances: r.subj.Clearances})
		if err != nil {
			continue // strings only: cannot fail
		}
		parts = append(parts, store.SubscriptionOwner{Tenant: w.Tenant, ID: w.ID, Owner: b, At: w.LastUpdated})
	}
	return parts
}

// eventParts are the parts every unit of resource writes carries: the
// outbox events and the owners of the Subscriptions written.
func (r *Repo) eventParts(writes []store.Write, olds, docs map[int]map[string]any) []store.Part {
	return append([]store.Part{r.outbox(writes, olds, docs)}, r.subscriptionOwners(writes)...)
}

// Owner is the subject a recorded owner stands for, in tenant. It is
// never break-glass: an emergency override is for a person at a screen,
// not for a standing Subscription.
func Owner(tenant string, b []byte) (authz.Subject, error) {
	var o owner
	if err := json.Unmarshal(b, &o); err != nil || o.ID == "" {
		return authz.Subject{}, errors.New("subscription owner does not decode")
	}
	return authz.Subject{Tenant: tenant, ID: o.ID, Role: authz.Role(o.Role), Scopes: o.Scopes,
		Practitioner: o.Practitioner, Patient: o.Patient, Clearances: o.Clearances}, nil
}

// ParseCriteria parses a Subscription's criteria ("Type?query", or a
// bare "Type") strictly, as a condition is: an unknown or unsupported
// parameter is an error, never ignored. Messages name no values.
func ParseCriteria(criteria string) (*query.Query, error) {
	typ, raw, _ := cutType(criteria)
	if raw == "" {
		if _, _, ok := SplitConditional(typ + "?"); !ok {
			return nil, errors.New("criteria must start with a resource type")
		}
		return &query.Query{Type: typ}, nil
	}
	if _, _, ok := SplitConditional(criteria); !ok {
		return nil, errors.New("criteria must start with a resource type")
	}
	q, err := ParseCondition(typ, raw)
	if err != nil {
		return nil, err
	}
	return q, nil
}

func cutType(s string) (typ, raw string, found bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '?' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// Matches says whether the current version of typ/id in tenant matches
// q, with this server's search (the same plan a search runs), on the
// whole tenant: it is the server's own evaluation and discloses nothing;
// what a notification may carry is decided on its owner separately.
func (s *Service) Matches(ctx context.Context, tenant string, q *query.Query, typ, id string) (bool, error) {
	if q.Type != typ {
		return false, nil
	}
	k, err := s.keyer(ctx, tenant)
	if err != nil {
		return false, err
	}
	withID := *q
	idq, err := query.Parse(typ, url.Values{"_id": {id}}, query.Options{Strict: true, Supported: search.Supported})
	if err != nil {
		return false, fmt.Errorf("criteria: %w", err)
	}
	withID.Clauses = append(append([]query.Clause(nil), q.Clauses...), idq.Clauses...)
	sq, err := search.Plan(&withID, tenant, k, s.search)
	if err != nil {
		return false, fmt.Errorf("criteria: %w", err)
	}
	sq.Types = []string{typ}
	sq.Order, sq.After, sq.Limit = nil, nil, 1
	hits, err := s.st.Search(ctx, *sq)
	if err != nil {
		return false, store.Problem(err)
	}
	return len(hits) > 0, nil
}

// MatchingIDs is Matches for many resources of one type at once: the
// ids among ids that q matches now, found with one search per hundred
// ids (the most values one parameter takes) instead of one per id. A
// Subscription's delivery batch is evaluated so: with a hundred
// Subscriptions on one type, each change was a hundred searches.
func (s *Service) MatchingIDs(ctx context.Context, tenant string, q *query.Query, typ string, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if q.Type != typ || len(ids) == 0 {
		return out, nil
	}
	k, err := s.keyer(ctx, tenant)
	if err != nil {
		return nil, err
	}
	// A search takes at most 100 values of one parameter and 2,000
	// characters in one value (query.Parse): about 50 UUIDs.
	const values, chars = 100, 2000
	for start := 0; start < len(ids); {
		end, n := start, 0
		for end < len(ids) && end-start < values && n+len(ids[end])+1 <= chars {
			n += len(ids[end]) + 1
			end++
		}
		if end == start {
			end++ // an id too long for any search: Parse refuses it
		}
		part := ids[start:end]
		start = end
		sq, err := matchingQuery(q, tenant, k, s.search, typ, part)
		if err != nil {
			return nil, err
		}
		hits, err := s.st.Search(ctx, *sq)
		if err != nil {
			return nil, store.Problem(err)
		}
		for _, h := range hits {
			out[h.ID] = true
		}
	}
	return out, nil
}

// matchingQuery is the search of MatchingIDs for the ids part: the
// criteria and _id, driven by _id (search.Plan ranks it first), so that
// it reads the batch's resources and probes each for the criteria: its
// cost is the batch's, whatever the criteria's own index rows number.
func matchingQuery(q *query.Query, tenant string, k search.Keyer, o search.Options, typ string, part []string) (*store.SearchQuery, error) {
	withID := *q
	idq, err := query.Parse(typ, url.Values{"_id": {strings.Join(part, ",")}}, query.Options{Strict: true, Supported: search.Supported})
	if err != nil {
		return nil, fmt.Errorf("criteria: %w", err)
	}
	withID.Clauses = append(append([]query.Clause(nil), q.Clauses...), idq.Clauses...)
	sq, err := search.Plan(&withID, tenant, k, o)
	if err != nil {
		return nil, fmt.Errorf("criteria: %w", err)
	}
	sq.Types = []string{typ}
	sq.Order, sq.After, sq.Limit = nil, nil, len(part)
	return sq, nil
}

// ExplainMatching is the database's plan of MatchingIDs' search for ids
// (at most a hundred), so that tests and operators can check what a
// Subscription's delivery batch reads.
func (s *Service) ExplainMatching(ctx context.Context, tenant string, q *query.Query, ids []string, o store.ExplainOptions) ([]string, error) {
	ex, ok := s.st.(store.Explainer)
	if !ok {
		return nil, fmt.Errorf("%w: this store cannot explain queries", problem.ErrUnavailable)
	}
	k, err := s.keyer(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sq, err := matchingQuery(q, tenant, k, s.search, q.Type, ids)
	if err != nil {
		return nil, err
	}
	return ex.Explain(ctx, *sq, o)
}

// indexMatcher evaluates a planned search on given index rows (the SQL
// stores implement it).
type indexMatcher interface {
	MatchIndex(ctx context.Context, q store.SearchQuery, typ, id string, ix *store.Index) (bool, error)
}

// MatchedBefore says whether typ/id in tenant matched q as it was before
// its deletion: deleted is the tombstone's version, and the version
// before it is opened, indexed as it was when written, and evaluated
// with the same plan and SQL as a search (see sqlstore's MatchIndex);
// a chained or reverse-chained condition does not match. Like Matches,
// it is the server's own evaluation and discloses nothing.
func (s *Service) MatchedBefore(ctx context.Context, tenant string, q *query.Query, typ, id string, deleted int64) (bool, error) {
	switch {
	case q.Type != typ:
		return false, nil
	case len(q.Clauses) == 0:
		return true, nil
	case deleted < 2:
		return false, nil
	}
	m, ok := s.st.(indexMatcher)
	if !ok {
		return false, nil
	}
	v, err := s.st.Version(ctx, tenant, typ, id, deleted-1)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, store.Problem(err)
	}
	if v.Deleted {
		return false, nil
	}
	plain, err := s.open(ctx, v)
	if err != nil {
		return false, err
	}
	doc, err := docOf(v, plain)
	if err != nil {
		return false, err
	}
	k, err := s.keyer(ctx, tenant)
	if err != nil {
		return false, err
	}
	ix, err := s.indexer.Index(doc, k)
	if err != nil {
		return false, fmt.Errorf("criteria: index: %w", err)
	}
	sq, err := search.Plan(q, tenant, k, s.search)
	if err != nil {
		return false, fmt.Errorf("criteria: %w", err)
	}
	sq.Types = []string{typ}
	hit, err := m.MatchIndex(ctx, *sq, typ, id, ix)
	if err != nil {
		return false, store.Problem(err)
	}
	return hit, nil
}

// SubscriptionVersion is a Subscription as the subscription manager
// loads it: the server's own configuration, read without a disclosure
// record (it is not patient data and leaves the server only to its
// owner's endpoint).
type SubscriptionVersion struct {
	Version int64
	Deleted bool
	Doc     map[string]any
}

// Subscription loads the current version of Subscription id of tenant;
// when it is version known, Doc is left nil (nothing changed).
func (s *Service) Subscription(ctx context.Context, tenant, id string, known int64) (*SubscriptionVersion, error) {
	v, err := s.st.Current(ctx, tenant, "Subscription", id)
	if err != nil {
		return nil, err
	}
	out := &SubscriptionVersion{Version: v.Version, Deleted: v.Deleted}
	if v.Deleted || v.Version == known {
		return out, nil
	}
	plain, err := s.open(ctx, v)
	if err != nil {
		return nil, err
	}
	out.Doc, err = docOf(v, plain)
	return out, err
}

// OwnerNow is the owner recorded for a Subscription as it stands now: a
// user's role, links and clearances are taken from the user's current
// account (a disabled or removed account has no access at all: ok is
// false); the scopes are those the owner held when writing it.
func (s *Service) OwnerNow(ctx context.Context, tenant string, recorded []byte) (subj authz.Subject, ok bool, err error) {
	subj, err = Owner(tenant, recorded)
	if err != nil {
		return subj, false, err
	}
	u, err := s.st.UserByID(ctx, subj.ID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		// Not a user (an OAuth client, a system actor): as recorded.
		return subj, true, nil
	case err != nil:
		return subj, false, err
	case u.Disabled || u.Tenant != tenant:
		return subj, false, nil
	}
	subj.Role, subj.Practitioner, subj.Patient, subj.Clearances = authz.Role(u.Role), u.Practitioner, u.Patient, u.Clearances
	return subj, true, nil
}

// subscriptionIssues refuses a Subscription whose criteria this server
// cannot evaluate (a topic-based one names a topic URL: its filter is
// checked when it is delivered).
func subscriptionIssues(res *fhir.Resource) []fhir.Issue {
	if res.Type != "Subscription" {
		return nil
	}
	c, _ := res.Doc["criteria"].(string)
	if c == "" {
		return nil // a missing criteria is the validator's
	}
	if strings.HasPrefix(c, "http://") || strings.HasPrefix(c, "https://") {
		// A topic: one of the registry's, with filter criteria that fit it.
		if _, ok := topics.ByURL(c); !ok {
			return []fhir.Issue{{Severity: "error", Code: "not-supported", Expression: "Subscription.criteria", Diagnostics: topics.ErrUnknown.Error()}}
		}
		var err error
		if c, err = topics.Criteria(c, filterCriteria(res.Doc)); err != nil {
			return []fhir.Issue{{Severity: "error", Code: "invalid", Expression: "Subscription.criteria", Diagnostics: err.Error()}}
		}
	}
	if _, err := ParseCriteria(c); err != nil {
		msg := "criteria cannot be evaluated by this server"
		var pe *problem.Error
		if errors.As(err, &pe) && len(pe.Issues) > 0 {
			msg += ": " + pe.Issues[0].Diagnostics
		}
		return []fhir.Issue{{Severity: "error", Code: "invalid", Expression: "Subscription.criteria", Diagnostics: msg}}
	}
	return nil
}

// filterCriteria is the Backport's backport-filter-criteria extension on
// _criteria ("" when absent).
func filterCriteria(doc map[string]any) string {
	el, _ := doc["_criteria"].(map[string]any)
	xs, _ := el["extension"].([]any)
	for _, x := range xs {
		if xm, ok := x.(map[string]any); ok && xm["url"] == extFilter {
			s, _ := xm["valueString"].(string)
			return s
		}
	}
	return ""
}

// extFilter is the Backport IG's filter criteria extension.
const extFilter = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria"
