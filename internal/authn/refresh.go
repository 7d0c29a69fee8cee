package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/store"
)

// Refresh token lifetimes: offline_access for long-running apps,
// online_access for the length of a working day.
const (
	OfflineRefreshTTL = 30 * 24 * time.Hour
	OnlineRefreshTTL  = 12 * time.Hour
)

func refreshID(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newRefresh makes a refresh token for a user when the scope asks for one
// (offline_access or online_access), in family (a new family when empty).
func newRefresh(u *store.User, scope, family string, now time.Time) (string, *store.Refresh, error) {
	fields := strings.Fields(scope)
	ttl := time.Duration(0)
	switch {
	case slices.Contains(fields, "offline_access"):
		ttl = OfflineRefreshTTL
	case slices.Contains(fields, "online_access"):
		ttl = OnlineRefreshTTL
	default:
		return "", nil, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	tok := base64.RawURLEncoding.EncodeToString(b)
	if family == "" {
		f := make([]byte, 16)
		if _, err := rand.Read(f); err != nil {
			return "", nil, err
		}
		family = hex.EncodeToString(f)
	}
	return tok, &store.Refresh{ID: refreshID(tok), Family: family, UserID: u.ID, Tenant: u.Tenant, Scope: scope, Expires: now.Add(ttl)}, nil
}

// RefreshRequest is a refresh_token grant.
type RefreshRequest struct {
	RequestID    string
	RefreshToken string
	Scope        string // empty: the scope of the original grant; else a subset
	// Client is the client authentication sent with the request: a
	// confidential app must authenticate to use its refresh tokens
	// (RFC 6749 6); others send none.
	Client ClientAuth
}

// RefreshGrant exchanges a refresh token for a new access token and a new
// refresh token (rotation). A refresh token used a second time revokes its
// whole family: every token descended from the same login stops working.
func (s *Service) RefreshGrant(ctx context.Context, rr RefreshRequest) (Token, error) {
	now := s.o.Now().UTC()
	rec := &audit.Record{Time: now, RequestID: rr.RequestID, Action: "token-refresh"}
	fail := func(detail string, unit *store.Unit) (Token, error) {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
		if unit == nil {
			unit = &store.Unit{}
		}
		if err := s.ledger().Commit(ctx, unit, rec); err != nil {
			return Token{}, err
		}
		return Token{}, ErrInvalidGrant
	}
	r, err := s.st.RefreshByID(ctx, refreshID(rr.RefreshToken))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fail("refresh-unknown", nil)
	case err != nil:
		return Token{}, err
	}
	rec.Tenant, rec.Actor = r.Tenant, r.UserID
	rec.Entities = []string{"refresh-family/" + r.Family}
	// The client first: a failed authentication changes nothing.
	if err := s.refreshClient(ctx, r, rr.Client, rec); err != nil {
		return Token{}, err
	}
	switch {
	case r.Revoked:
		return fail("refresh-revoked", nil)
	case r.Used:
		return fail("refresh-reuse;family-revoked", &store.Unit{Parts: []store.Part{store.RevokeFamily{Family: r.Family}}})
	case !now.Before(r.Expires):
		return fail("refresh-expired", nil)
	}
	u, err := s.st.UserByID(ctx, r.UserID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (u.Disabled || now.Before(u.LockedUntil)) {
		return fail("user-unavailable", &store.Unit{Parts: []store.Part{store.RevokeFamily{Family: r.Family}}})
	}
	if err != nil {
		return Token{}, err
	}
	if _, ok := authz.ParseRole(u.Role); !ok {
		return fail("user-unavailable", nil)
	}
	rec.Role = u.Role
	scope, err := s.narrowScope(ctx, r.Scope, rr.Scope, rec)
	if err != nil {
		return Token{}, err
	}
	next, nr, err := newRefresh(u, r.Scope, r.Family, now)
	if err != nil {
		return Token{}, err
	}
	unit := &store.Unit{Parts: []store.Part{store.UseRefresh{ID: r.ID}}}
	if nr != nil {
		nr.Patient, nr.Encounter, nr.ClientID = r.Patient, r.Encounter, r.ClientID
		unit.Parts = append(unit.Parts, store.NewRefresh{Refresh: nr})
	}
	rec.Detail = "token-issued"
	err = s.ledger().Commit(ctx, unit, rec)
	if errors.Is(err, store.ErrConflict) {
		// Used concurrently by someone else: the same as a reuse.
		rec = &audit.Record{Time: now, Tenant: r.Tenant, RequestID: rr.RequestID, Actor: r.UserID, Role: u.Role, Action: "token-refresh", Entities: []string{"refresh-family/" + r.Family}}
		return fail("refresh-reuse;family-revoked", &store.Unit{Parts: []store.Part{store.RevokeFamily{Family: r.Family}}})
	}
	if err != nil {
		return Token{}, err
	}
	subj := subjectOf(u, scope)
	if r.Patient != "" {
		subj.Patient = r.Patient // the EHR launch's patient context
	}
	tok, err := s.issueFor(subj, s.o.TTL, appContext{ClientID: r.ClientID, Encounter: r.Encounter})
	if err != nil {
		return Token{}, err
	}
	tok.Patient, tok.Encounter = r.Patient, r.Encounter
	tok.RefreshToken = next
	return tok, nil
}

// refreshClient authenticates the client of a refresh request as the
// client the token r was issued to. A non-nil error is the answer to the
// request, its refusal already in the ledger.
func (s *Service) refreshClient(ctx context.Context, r *store.Refresh, ca ClientAuth, rec *audit.Record) error {
	refuse := func(detail string, answer error) error {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, detail
		if err := s.ledger().Record(ctx, rec); err != nil {
			return err
		}
		return answer
	}
	switch {
	case r.ClientID != "" && ca.ClientID != "" && ca.ClientID != r.ClientID:
		return refuse("refresh-client-mismatch", ErrInvalidGrant)
	case r.ClientID == "" && ca.sent():
		return refuse("client-auth-no-client", fmt.Errorf("%w: this refresh token was not issued to a client", ErrInvalidClient))
	case r.ClientID != "":
		ca.ClientID = r.ClientID
		if detail, err := s.authenticateApp(ctx, ca, rec); err != nil {
			if detail == "" {
				return err
			}
			return refuse(detail, err)
		}
	}
	return nil
}

// narrowScope returns the scope of the refreshed token: the granted one,
// or asked if it is a subset of it (RFC 6749 6); anything else is refused
// and recorded.
func (s *Service) narrowScope(ctx context.Context, granted, asked string, rec *audit.Record) (string, error) {
	if asked == "" {
		return granted, nil
	}
	have, _ := authz.ParseScopes(granted)
	want, err := authz.ParseScopes(asked)
	for _, sc := range want {
		if err != nil || !slices.ContainsFunc(have, func(g authz.Scope) bool { return authz.Covers(g, sc) }) {
			err = fmt.Errorf("%w: %s was not granted to this refresh token", ErrInvalidScope, sc.Raw)
			break
		}
	}
	if err != nil {
		rec.Outcome, rec.Detail = audit.OutcomeMinor, "scope-not-granted"
		if err := s.ledger().Record(ctx, rec); err != nil {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", ErrInvalidScope, err)
	}
	return authz.JoinScopes(want), nil
}
