package authn

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/problem"
	"github.com/wardhealth/ward/internal/store"
)

// SMART EHR launch: a signed-in user (in Ward's words, the EHR session)
// creates a launch context for one app and one patient; the app is opened
// with iss and the opaque launch value, sends launch back in its
// authorization request (with scope launch), and the token response
// carries the patient (and encounter) of the context.

// LaunchTTL is how long a launch value may be used to start an
// authorization request, and how long it may take until the user signs in.
const LaunchTTL = 5 * time.Minute

// NewLaunch is a launch context to create. The caller (the API) has
// already checked, through the records repository, that subject may read
// the Patient (and the Encounter, which must be the patient's).
type NewLaunch struct {
	RequestID          string
	ClientID           string
	Patient, Encounter string
}

// CreatedLaunch is the opaque launch value (never stored: only its
// SHA-256 is) and when it expires.
type CreatedLaunch struct {
	Launch  string
	Expires time.Time
	// LaunchURI is the app's registered launch_uri ("" : none).
	LaunchURI string
}

// CreateLaunch stores a launch context bound to subject (a user), its
// tenant and an enabled app of that tenant registered for scope launch.
// Audited.
func (s *Service) CreateLaunch(ctx context.Context, subj authz.Subject, nl NewLaunch) (CreatedLaunch, error) {
	if _, ok := authz.ParseRole(string(subj.Role)); !ok || strings.HasPrefix(subj.ID, "ext/") {
		return CreatedLaunch{}, problem.New(problem.ErrForbidden, "forbidden", "an EHR launch is created by a user signed in to Ward")
	}
	if !fhirID.MatchString(nl.Patient) {
		return CreatedLaunch{}, problem.At(problem.ErrInvalid, "invalid", "patient", "patient must be a Patient id")
	}
	if nl.Encounter != "" && !fhirID.MatchString(nl.Encounter) {
		return CreatedLaunch{}, problem.At(problem.ErrInvalid, "invalid", "encounter", "encounter must be an Encounter id")
	}
	c, err := s.st.ClientByID(ctx, nl.ClientID)
	if errors.Is(err, store.ErrNotFound) || err == nil && (c.Tenant != subj.Tenant || c.Disabled || len(c.RedirectURIs) == 0 || !slices.Contains(strings.Fields(c.Scope), "launch")) {
		return CreatedLaunch{}, problem.At(problem.ErrInvalid, "invalid", "client_id", "client_id must name an enabled app of this tenant registered for scope launch")
	}
	if err != nil {
		return CreatedLaunch{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return CreatedLaunch{}, err
	}
	launch := base64.RawURLEncoding.EncodeToString(b)
	now := s.o.Now().UTC()
	l := &store.Launch{ID: launchID(launch), Tenant: subj.Tenant, UserID: subj.ID, ClientID: c.ID, Patient: nl.Patient, Encounter: nl.Encounter, Expires: now.Add(LaunchTTL)}
	ents := []string{"client/" + c.ID, "Patient/" + nl.Patient}
	if nl.Encounter != "" {
		ents = append(ents, "Encounter/"+nl.Encounter)
	}
	err = s.ledger().Commit(ctx, &store.Unit{Parts: []store.Part{store.NewLaunch{Launch: l}}}, &audit.Record{
		Time: now, Tenant: subj.Tenant, RequestID: nl.RequestID, Actor: subj.ID, Role: string(subj.Role), Action: "launch-create", Entities: ents,
	})
	if err != nil {
		return CreatedLaunch{}, err
	}
	return CreatedLaunch{Launch: launch, Expires: l.Expires, LaunchURI: c.LaunchURI}, nil
}

// launchID is what a launch value is stored as.
func launchID(launch string) string { return refreshID("ward/launch/v1\x00" + launch) }

// checkLaunch finds a usable launch context for client c, or says why not
// (for an OAuth error description).
func (s *Service) checkLaunch(ctx context.Context, c *store.Client, launch string) (*store.Launch, string, error) {
	if len(launch) > 256 {
		return nil, "launch is unknown, expired or used", nil
	}
	l, err := s.st.LaunchByID(ctx, launchID(launch))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, "launch is unknown, expired or used", nil
	case err != nil:
		return nil, "", err
	case l.Used || !s.o.Now().Before(l.Expires) || l.Tenant != c.Tenant:
		return nil, "launch is unknown, expired or used", nil
	case l.ClientID != c.ID:
		return nil, "launch was created for another app", nil
	}
	return l, "", nil
}
