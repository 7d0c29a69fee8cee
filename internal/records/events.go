package records

import (
	"github.com/wardhealth/ward/internal/events"
	"github.com/wardhealth/ward/internal/facts"
	"github.com/wardhealth/ward/internal/store"
)

// outbox is the store part that appends the domain events of writes (see
// internal/events) to the unit that commits them, so that an event exists
// exactly when its change does. olds[i] and docs[i] are the content the
// i-th write replaces and writes (nil: none; docs[i] nil for a deletion).
// A write whose replaced content is unknown but which is not a first
// version is an update.
func (r *Repo) outbox(writes []store.Write, olds, docs map[int]map[string]any) store.Outbox {
	var evs []events.Event
	for i, w := range writes {
		old, doc := olds[i], docs[i]
		if w.Deleted {
			doc = nil
		}
		if old == nil && w.Version > 1 {
			old = map[string]any{}
		}
		src := doc
		if src == nil {
			src = old
		}
		evs = append(evs, events.ForChange(events.Change{
			Tenant: w.Tenant, Type: w.Type, ID: w.ID, Version: w.Version, Time: w.LastUpdated,
			Old: old, Doc: doc, Patients: facts.PatientsOf(w.Type, w.ID, src),
			Actor: r.subj.ID, Role: string(r.subj.Role), RequestID: r.requestID,
			Uploaded: w.Type == "Binary" && doc != nil && binaryMeta(doc).Object != "",
		})...)
	}
	return store.Outbox{Events: evs}
}
