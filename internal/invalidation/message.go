// Package invalidation carries cache invalidations between the nodes of a
// Ward cluster over NATS core publish/subscribe, so that a write or a
// revocation committed on one node is honoured on every other node at
// once instead of after its cache lifetime.
//
// Guarantees: a message holds only a node id, a tenant id, a kind, (for
// a revoked Ward token) the token's random id and (for facts that changed
// for one patient alone) that patient's resource id; Encode and Decode refuse
// anything else, so no PHI can travel on the subject. A node ignores its own
// messages. Live reports false from the moment the connection is lost until
// it is re-established and the caches have been reset, so a node that may
// have missed a message never trusts what it cached (see Bus.Live); the
// same reset runs when the server reports that this node dropped messages
// (slow consumer).
package invalidation

import (
	"errors"
	"fmt"
	"regexp"
)

// Kind is what a message invalidates.
type Kind uint8

// The kinds. Their numbers are the wire format: never renumber them.
const (
	// Relationships: a write that may change care relationships of the
	// tenant (Patient, CareTeam, Encounter, PractitionerRole).
	Relationships Kind = 1
	// Consents: a write of a Consent of the tenant.
	Consents Kind = 2
	// Revocation: an access token was revoked; JTI names it, or is empty
	// when its id cannot travel (a receiver then reloads the revocations
	// from the store).
	Revocation Kind = 3
	// Keys: the token signing keys changed (ward keys rotate); Tenant is
	// empty.
	Keys Kind = 4
)

func (k Kind) String() string {
	switch k {
	case Relationships:
		return "relationships"
	case Consents:
		return "consents"
	case Revocation:
		return "revocation"
	case Keys:
		return "keys"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one invalidation.
type Message struct {
	Node   string // the publishing node (Bus.Node)
	Tenant string
	Kind   Kind
	JTI    string // Revocation only: the revoked token's id
	// Patient, for Relationships and Consents, names the one patient whose
	// facts changed (a create in their compartment); empty: the tenant's.
	Patient string
}

// Version is the first byte of every encoded message.
const Version = 1

// ErrInvalid is returned by Decode and Encode for a message that is not
// well formed: unknown version or kind, a field out of its pattern, or
// trailing bytes.
var ErrInvalid = errors.New("invalid invalidation message")

var (
	nodePattern   = regexp.MustCompile(`^[A-Za-z0-9]{1,32}$`)
	tenantPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`) // as authn.TenantPattern
	jtiPattern    = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	idPattern     = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`) // a FHIR resource id
)

// ValidJTI reports whether a token id may travel in a message: Ward's own
// ids (random hex) do; an external issuer's id of another shape does not
// (its revocation travels without it).
func ValidJTI(jti string) bool { return jtiPattern.MatchString(jti) }

// Validate checks every field against its pattern: ids only, never text.
func (m Message) Validate() error {
	if !nodePattern.MatchString(m.Node) {
		return fmt.Errorf("%w: node id", ErrInvalid)
	}
	switch m.Kind {
	case Relationships, Consents, Revocation:
		if !tenantPattern.MatchString(m.Tenant) {
			return fmt.Errorf("%w: tenant", ErrInvalid)
		}
	case Keys:
		if m.Tenant != "" {
			return fmt.Errorf("%w: keys carry no tenant", ErrInvalid)
		}
	default:
		return fmt.Errorf("%w: kind %d", ErrInvalid, m.Kind)
	}
	if m.JTI != "" && (m.Kind != Revocation || !jtiPattern.MatchString(m.JTI)) {
		return fmt.Errorf("%w: token id", ErrInvalid)
	}
	if m.Patient != "" && (m.Kind != Relationships && m.Kind != Consents || !idPattern.MatchString(m.Patient)) {
		return fmt.Errorf("%w: patient id", ErrInvalid)
	}
	return nil
}

// Encode returns the wire form: the version byte, the kind byte, then the
// node, the tenant, the token id and the patient id, each as one length
// byte and its bytes.
func Encode(m Message) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, 6+len(m.Node)+len(m.Tenant)+len(m.JTI)+len(m.Patient))
	b = append(b, Version, byte(m.Kind))
	for _, f := range []string{m.Node, m.Tenant, m.JTI, m.Patient} {
		b = append(b, byte(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// Decode parses the wire form strictly: a message Encode would not
// produce byte for byte is ErrInvalid.
func Decode(b []byte) (Message, error) {
	if len(b) < 2 || b[0] != Version {
		return Message{}, fmt.Errorf("%w: version", ErrInvalid)
	}
	m := Message{Kind: Kind(b[1])}
	rest := b[2:]
	for _, f := range []*string{&m.Node, &m.Tenant, &m.JTI, &m.Patient} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return Message{}, fmt.Errorf("%w: truncated", ErrInvalid)
		}
		*f = string(rest[1 : 1+int(rest[0])])
		rest = rest[1+int(rest[0]):]
	}
	if len(rest) != 0 {
		return Message{}, fmt.Errorf("%w: trailing bytes", ErrInvalid)
	}
	if err := m.Validate(); err != nil {
		return Message{}, err
	}
	return m, nil
}
