// Package subscriptions delivers FHIR R4 Subscriptions: criteria-based
// Subscriptions with a rest-hook channel, in the classic R4 shape and in
// the notification shape of the R4 Subscriptions Backport IG.
//
// Guarantees:
//   - Every notification goes through the outbox dispatcher
//     (internal/dispatch): each active Subscription is one receiver, with
//     its lease, retries, circuit breaker and dead letters, so a dead
//     endpoint never delays another Subscription.
//   - Criteria are evaluated by this server's own search (records.Matches)
//     on the changed resource.
//   - A notification carries a resource only if the Subscription's owner
//     may read it at the moment of delivery: it is read through the
//     owner's records repository (authz.Decide on current facts, the
//     owner's current account), and that read is audited like any read.
//     When the owner may not read it, a full-resource Subscription drops
//     to id-only and an id-only or empty one sends nothing.
//   - Nothing about a resource is sent that the payload setting does not
//     ask for; errors stored as a Subscription's error or with a dead
//     letter name no resource content.
package subscriptions

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/wardhealth/ward/internal/records"
	"github.com/wardhealth/ward/internal/search/query"
	"github.com/wardhealth/ward/internal/topics"
)

// Backport IG canonical URLs (R4 Subscriptions Backport, 1.1.0).
const (
	backport        = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	ExtPayload      = backport + "backport-payload-content"
	ExtFilter       = backport + "backport-filter-criteria"
	ProfileTopic    = backport + "backport-subscription"
	ProfileStatus   = backport + "backport-subscription-status-r4"
	ExtHeartbeat    = backport + "backport-heartbeat-period"
	ChannelRestHook = "rest-hook"
	ChannelWS       = "websocket"
)

// Payload contents.
const (
	Empty        = "empty"
	IDOnly       = "id-only"
	FullResource = "full-resource"
)

// Sub is a Subscription as delivered.
type Sub struct {
	Tenant, ID string
	Version    int64
	Status     string
	// Criteria is the R4 criteria, or a topic-based Subscription's
	// filter criteria; Topic the topic canonical (backport) or "".
	Criteria string
	Topic    string
	Query    *query.Query
	Channel  string
	Endpoint string
	// Headers are channel.header ("Name: value").
	Headers []string
	// Payload is the MIME type ("" : no body); Content what it carries.
	Payload string
	Content string
	// Heartbeat is the backport heartbeat period in seconds (0: none).
	Heartbeat int
}

// Backport says whether notifications take the Backport IG's Bundle
// shape: a topic-based Subscription, or any with a payload content
// extension.
func (s *Sub) Backport() bool { return s.Topic != "" || s.Content != "" && s.Payload != "" }

// ErrInvalid is a Subscription that cannot be delivered; its message
// names the element, never a value.
var ErrInvalid = errors.New("subscription")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, a...)...)
}

// Parse reads a Subscription resource (R4, classic or backport shape).
func Parse(tenant, id string, version int64, doc map[string]any) (*Sub, error) {
	s := &Sub{Tenant: tenant, ID: id, Version: version}
	s.Status, _ = doc["status"].(string)
	crit, _ := doc["criteria"].(string)
	if isTopic(doc, crit) {
		s.Topic = crit
		c, err := topics.Criteria(crit, extString(doc["_criteria"], ExtFilter))
		if err != nil {
			return s, invalid("%v", err)
		}
		s.Criteria = c
	} else {
		s.Criteria = crit
	}
	q, err := records.ParseCriteria(s.Criteria)
	if err != nil {
		return s, invalid("criteria: %v", errText(err))
	}
	s.Query = q
	ch, _ := doc["channel"].(map[string]any)
	if ch == nil {
		return s, invalid("channel is required")
	}
	s.Channel, _ = ch["type"].(string)
	s.Endpoint, _ = ch["endpoint"].(string)
	s.Payload, _ = ch["payload"].(string)
	if hs, ok := ch["header"].([]any); ok {
		for _, h := range hs {
			if hv, ok := h.(string); ok {
				s.Headers = append(s.Headers, hv)
			}
		}
	}
	s.Content = extCode(ch["_payload"], ExtPayload)
	s.Heartbeat = extInt(ch, ExtHeartbeat)
	return s, s.check()
}

func (s *Sub) check() error {
	switch s.Content {
	case "", Empty, IDOnly, FullResource:
	default:
		return invalid("payload content must be empty, id-only or full-resource")
	}
	if s.Payload != "" && s.Payload != "application/fhir+json" && s.Payload != "application/json" {
		return invalid("channel.payload must be application/fhir+json")
	}
	for _, h := range s.Headers {
		name, _, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(h, "\r\n") {
			return invalid("channel.header must be \"Name: value\"")
		}
	}
	switch s.Channel {
	case ChannelRestHook:
		return CheckEndpoint(s.Endpoint)
	case ChannelWS:
		return nil
	}
	return invalid("channel.type must be rest-hook or websocket")
}

// content is what a notification carries when the owner may read it.
func (s *Sub) content() string {
	switch {
	case s.Payload == "":
		return Empty
	case s.Content == "":
		return FullResource // R4: a payload means the resource
	}
	return s.Content
}

// CheckEndpoint accepts https URLs, and http only to a loopback host (as
// webhooks do).
func CheckEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return invalid("channel.endpoint must be an absolute https URL without credentials")
	}
	if u.Scheme == "https" {
		return nil
	}
	if u.Scheme == "http" {
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return invalid("channel.endpoint must be https (http only to a loopback address)")
}

func isTopic(doc map[string]any, crit string) bool {
	if m, ok := doc["meta"].(map[string]any); ok {
		if ps, ok := m["profile"].([]any); ok {
			for _, p := range ps {
				if p == ProfileTopic {
					return true
				}
			}
		}
	}
	return strings.HasPrefix(crit, "http://") || strings.HasPrefix(crit, "https://")
}

func extension(el any, u string) map[string]any {
	m, _ := el.(map[string]any)
	xs, _ := m["extension"].([]any)
	for _, x := range xs {
		if xm, ok := x.(map[string]any); ok && xm["url"] == u {
			return xm
		}
	}
	return nil
}

func extString(el any, u string) string {
	s, _ := extension(el, u)["valueString"].(string)
	return s
}

func extCode(el any, u string) string {
	s, _ := extension(el, u)["valueCode"].(string)
	return s
}

func extInt(el any, u string) int {
	switch v := extension(el, u)["valueUnsignedInt"].(type) {
	case float64:
		return int(v)
	case json.Number:
		n, _ := strconv.Atoi(string(v))
		return n
	}
	return 0
}

func errText(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
