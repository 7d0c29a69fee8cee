// Package topics is the registry of the SubscriptionTopics Ward supports
// (R4 Subscriptions Backport IG): their canonical URLs, what each
// triggers on, and their R4 representation (a Basic resource with the
// cross-version SubscriptionTopic extensions, as the IG does in R4).
//
// Guarantee: a topic-based Subscription is accepted only for a topic
// listed here (Known), and its notifications are decided by the topic's
// own criteria and the Subscription's filter criteria together
// (Criteria).
package topics

import (
	"errors"
	"strings"
)

// Base is the namespace of Ward's topic canonicals.
const Base = "http://wardhealth.org/fhir/SubscriptionTopic/"

// Topic is one supported SubscriptionTopic.
type Topic struct {
	// ID is the topic's id (its URL is Base + ID).
	ID, Title, Description string
	// Resource is the resource type the topic is about; "" means any
	// type, named by the Subscription's filter criteria.
	Resource string
	// Query is the topic's own criteria (search parameters of Resource,
	// "" for none), combined with the Subscription's filter.
	Query string
	// Interactions are the changes that trigger it (create, update,
	// delete).
	Interactions []string
}

// URL is the topic's canonical URL.
func (t *Topic) URL() string { return Base + t.ID }

var all = []Topic{
	{ID: "resource-change", Title: "Resource change",
		Description:  "A resource of the type the filter criteria name is created, updated or deleted and matches them.",
		Interactions: []string{"create", "update", "delete"}},
	{ID: "patient-change", Title: "Patient change", Resource: "Patient",
		Description:  "A Patient is created, updated or deleted.",
		Interactions: []string{"create", "update", "delete"}},
	{ID: "encounter-finished", Title: "Encounter finished", Resource: "Encounter", Query: "status=finished",
		Description:  "An Encounter is created or updated with status finished.",
		Interactions: []string{"create", "update"}},
	{ID: "observation-final", Title: "Observation final", Resource: "Observation", Query: "status=final",
		Description:  "An Observation is created or updated with status final.",
		Interactions: []string{"create", "update"}},
}

// All lists the supported topics (shared: do not modify).
func All() []Topic { return all }

// ByURL returns the topic of a canonical URL (a "|version" suffix is
// ignored); ok is false for a topic Ward does not support.
func ByURL(u string) (*Topic, bool) {
	u, _, _ = strings.Cut(u, "|")
	for i := range all {
		if all[i].URL() == u {
			return &all[i], true
		}
	}
	return nil, false
}

// ByID returns the topic of an id.
func ByID(id string) (*Topic, bool) {
	for i := range all {
		if all[i].ID == id {
			return &all[i], true
		}
	}
	return nil, false
}

// ErrUnknown is returned for a topic URL that is not in the registry.
var ErrUnknown = errors.New("criteria names a SubscriptionTopic this server does not support (see Subscription/$topic-list)")

// ErrType is returned when the filter criteria name another resource
// type than the topic's.
var ErrType = errors.New("filter criteria must be of the topic's resource type")

// Criteria combines the topic of url with a Subscription's filter
// criteria ("Type?query" or "Type"; "" allowed for a topic of one
// resource type) into the criteria Ward evaluates.
func Criteria(url, filter string) (string, error) {
	t, ok := ByURL(url)
	if !ok {
		return "", ErrUnknown
	}
	typ, q, _ := strings.Cut(filter, "?")
	switch {
	case t.Resource == "" && typ == "":
		return "", errors.New("a topic-based Subscription on this topic needs backport-filter-criteria naming the resource type")
	case t.Resource != "" && typ == "":
		typ = t.Resource
	case t.Resource != "" && typ != t.Resource:
		return "", ErrType
	}
	parts := make([]string, 0, 2)
	for _, p := range []string{t.Query, q} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if len(parts) == 0 {
		return typ, nil
	}
	return typ + "?" + strings.Join(parts, "&"), nil
}

// Triggers says whether a change (create, update, delete) is one of the
// topic's interactions; every change triggers a URL that is not a topic.
func Triggers(url, action string) bool {
	t, ok := ByURL(url)
	if !ok {
		return true
	}
	for _, a := range t.Interactions {
		if a == action {
			return true
		}
	}
	return false
}

// Extension URLs of the R4 representation (cross-version extensions of
// R5's SubscriptionTopic, as the Backport IG uses them).
const xver = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic."

// Basic is the topic as an R4 Basic resource.
func (t *Topic) Basic() map[string]any {
	trigger := []any{
		map[string]any{"url": "description", "valueMarkdown": t.Description},
	}
	res := t.Resource
	if res == "" {
		res = "Resource"
	}
	trigger = append(trigger, map[string]any{"url": "resource", "valueUri": "http://hl7.org/fhir/StructureDefinition/" + res})
	for _, a := range t.Interactions {
		trigger = append(trigger, map[string]any{"url": "supportedInteraction", "valueCode": a})
	}
	if t.Query != "" {
		trigger = append(trigger, map[string]any{"url": "queryCriteria", "extension": []any{
			map[string]any{"url": "current", "valueString": t.Query},
			map[string]any{"url": "resultForCreate", "valueCode": "test-passes"},
			map[string]any{"url": "resultForDelete", "valueCode": "test-fails"},
		}})
	}
	return map[string]any{
		"resourceType": "Basic",
		"id":           t.ID,
		"extension": []any{
			map[string]any{"url": xver + "url", "valueUri": t.URL()},
			map[string]any{"url": xver + "title", "valueString": t.Title},
			map[string]any{"url": xver + "status", "valueCode": "active"},
			map[string]any{"url": xver + "description", "valueMarkdown": t.Description},
			map[string]any{"url": xver + "resourceTrigger", "extension": trigger},
		},
		"code": map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}}},
	}
}

// List is the answer of Subscription/$topic-list: a Parameters resource
// of the supported topics' canonical URLs (of those in urls, when any
// are named).
func List(urls []string) map[string]any {
	params := []any{}
	for i := range all {
		if len(urls) > 0 && !contains(urls, all[i].URL()) {
			continue
		}
		params = append(params, map[string]any{"name": "subscription-topic-canonical", "valueCanonical": all[i].URL()})
	}
	return map[string]any{
		"resourceType": "Parameters",
		"meta":         map[string]any{"profile": []any{"http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-topic-canonical-urls"}},
		"parameter":    params,
	}
}

// Searchset is every topic as a searchset Bundle of Basic resources;
// base is the FHIR base URL of their fullUrls ("" : relative).
func Searchset(base string) map[string]any {
	entries := []any{}
	for i := range all {
		u := "SubscriptionTopic/" + all[i].ID
		if base != "" {
			u = base + "/" + u
		}
		entries = append(entries, map[string]any{"fullUrl": u, "resource": all[i].Basic(), "search": map[string]any{"mode": "match"}})
	}
	return map[string]any{"resourceType": "Bundle", "type": "searchset", "total": len(all), "entry": entries}
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
