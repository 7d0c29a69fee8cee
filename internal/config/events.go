package config

import (
	"errors"
	"net/url"
	"strings"
	"time"
)

// Events are the settings of the outbox dispatcher (issue #27, see
// docs/events.md).
type Events struct {
	// NATSURL is the JetStream server the events go to ("" : none; the
	// outbox still fills, and webhooks are still called).
	NATSURL string
	// NATSPrefix is the first subject token: <prefix>.<tenant>.<type>.
	NATSPrefix string
	// MaxAttempts failed deliveries make an event a dead letter.
	MaxAttempts int
	// Dispatch runs the dispatcher in `ward serve`.
	Dispatch bool
	// WebhookSync is how often a node reloads the registered webhooks
	// and the FHIR Subscriptions.
	WebhookSync time.Duration
}

func eventDefaults() Events {
	return Events{NATSPrefix: "ward", MaxAttempts: 8, Dispatch: true, WebhookSync: 2 * time.Second}
}

var eventSettings = []setting{
	{env: "WARD_EVENTS_NATS_URL", flag: "events-nats-url", doc: "NATS JetStream server the domain events are published to (nats:// or tls://); empty: none", secret: true,
		get: func(c *Config) string { return c.Events.NATSURL }, set: func(c *Config, v string) error {
			if v != "" {
				for _, part := range strings.Split(v, ",") {
					u, err := url.Parse(strings.TrimSpace(part))
					if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
						return errors.New("must be nats:// or tls:// URLs, comma-separated")
					}
				}
			}
			c.Events.NATSURL = v
			return nil
		}},
	{env: "WARD_EVENTS_NATS_PREFIX", flag: "events-nats-prefix", doc: "first subject token of published events (<prefix>.<tenant>.<type>; streams <PREFIX>_EVENTS_<tenant>)",
		get: func(c *Config) string { return c.Events.NATSPrefix }, set: func(c *Config, v string) error {
			if v == "" || len(v) > 32 || strings.ContainsAny(v, ".*> \t") || !subjectPattern.MatchString(v) {
				return errors.New("must be one NATS subject token (letters, digits, _ and -), at most 32 characters")
			}
			c.Events.NATSPrefix = v
			return nil
		}},
	intSetting("WARD_EVENTS_MAX_ATTEMPTS", "events-max-attempts", "failed deliveries of one event to one receiver before it becomes a dead letter (ward events dead-letters)", 1, 1000,
		func(c *Config) *int { return &c.Events.MaxAttempts }),
	{env: "WARD_EVENTS_DISPATCH", flag: "events-dispatch", doc: "run the event dispatcher in ward serve (true or false); the outbox is written either way",
		get: func(c *Config) string {
			if c.Events.Dispatch {
				return "true"
			}
			return "false"
		}, set: func(c *Config, v string) error {
			switch v {
			case "true":
				c.Events.Dispatch = true
			case "false":
				c.Events.Dispatch = false
			default:
				return errors.New("must be true or false")
			}
			return nil
		}},
}

func init() { settings = append(settings, eventSettings...) }
