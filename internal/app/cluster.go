package app

import (
	"fmt"
	"log/slog"

	"github.com/wardhealth/ward/internal/authn"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/invalidation"
	"github.com/wardhealth/ward/internal/records"
)

// factPeers publishes the records' invalidations on the bus.
type factPeers struct{ bus *invalidation.Bus }

func (p factPeers) FactsChanged(tenant string, f records.Facts, patients []string) {
	for _, k := range []struct {
		f    records.Facts
		kind invalidation.Kind
	}{{records.Relationships, invalidation.Relationships}, {records.Consents, invalidation.Consents}} {
		if f&k.f == 0 {
			continue
		}
		if len(patients) == 0 {
			p.bus.Publish(invalidation.Message{Tenant: tenant, Kind: k.kind})
			continue
		}
		for _, pid := range patients {
			p.bus.Publish(invalidation.Message{Tenant: tenant, Kind: k.kind, Patient: pid})
		}
	}
}

// tokenPeers publishes revocations and key rotations on the bus.
type tokenPeers struct{ bus *invalidation.Bus }

func (p tokenPeers) TokensChanged(c authn.Change) {
	if c.Keys {
		p.bus.Publish(invalidation.Message{Kind: invalidation.Keys})
	}
	if c.Tenant == "" {
		return
	}
	m := invalidation.Message{Tenant: c.Tenant, Kind: invalidation.Revocation, JTI: c.JTI}
	if !invalidation.ValidJTI(c.JTI) {
		// An external issuer's token id may be any text: it does not
		// travel; the receivers reload every revocation instead.
		m.JTI = ""
	}
	p.bus.Publish(m)
}

// applier applies other nodes' invalidations to this node's caches.
type applier struct {
	records *records.Service
	tokens  *authn.Service
	log     *slog.Logger
}

func (a applier) Invalidated(m invalidation.Message) {
	switch m.Kind {
	case invalidation.Relationships, invalidation.Consents:
		f := records.Relationships
		if m.Kind == invalidation.Consents {
			f = records.Consents
		}
		var patients []string
		if m.Patient != "" {
			patients = []string{m.Patient}
		}
		a.records.FactsChanged(m.Tenant, f, patients)
	case invalidation.Revocation:
		a.tokens.TokensChanged(authn.Change{Tenant: m.Tenant, JTI: m.JTI})
	case invalidation.Keys:
		a.tokens.TokensChanged(authn.Change{Keys: true})
	}
	a.log.Debug("cluster invalidation applied", "kind", m.Kind.String(), "from", m.Node)
}

func (a applier) Reset() {
	a.records.ResetFacts()
	a.tokens.ResetCaches()
}

// AnnounceSubjectsChanged tells the nodes on the bus (cfg.NATSURL; nothing
// to do when it is empty) that users or clients of tenant were disabled or
// enabled by a command that changed the store itself, so that they reload
// their disabled subjects at once rather than within their refresh.
func AnnounceSubjectsChanged(cfg config.Config, tenant string) error {
	if cfg.NATSURL == "" {
		return nil
	}
	bus, err := invalidation.Connect(invalidation.Options{URL: cfg.NATSURL, Prefix: cfg.NATSPrefix})
	if err != nil {
		return fmt.Errorf("WARD_NATS_URL: %w", err)
	}
	defer bus.Close() // flushes the message
	tokenPeers{bus}.TokensChanged(authn.Change{Tenant: tenant})
	return nil
}
