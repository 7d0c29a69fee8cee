package store

import (
	"time"

	"github.com/wardhealth/ward/internal/events"
)

// The outbox as the dispatcher reads it. Events are appended only through
// Commit (the Outbox part); what a dispatcher writes here is its own
// bookkeeping: positions, leases and dead letters. The methods live on
// the SQL stores; the dispatcher declares the interface it uses.

// OutboxEvent is one stored event with its commit-order number.
type OutboxEvent struct {
	Seq int64
	events.Event
}

// Receiver is one receiver's position in the outbox and its lease.
type Receiver struct {
	Name string
	// Pos is the last seq the receiver has taken (delivered or
	// dead-lettered).
	Pos        int64
	LeaseOwner string
	LeaseUntil int64 // Unix microseconds
	Delivered  int64
	Updated    int64 // Unix microseconds of the last advance
}

// DeadLetter is an event a receiver did not take after every attempt.
type DeadLetter struct {
	Receiver  string
	Seq       int64
	Attempts  int
	LastError string
	At        int64 // Unix microseconds
	// Replay is set when an operator asked for it to be delivered again.
	Replay bool
}

// OutboxStats is the outbox's depth.
type OutboxStats struct {
	// Head is the largest seq (0: empty); HeadAt the time of that event.
	Head   int64
	HeadAt int64
	Rows   int64
}

// Webhook is a registered receiver of events. Secret is sealed by the
// records layer's keys; the store never sees it in clear.
type Webhook struct {
	ID     string
	Tenant string
	URL    string
	Secret []byte
	// Types are the event types it receives (empty: all).
	Types   []string
	Created time.Time
}

// SubscriptionRow is the recorded owner of a FHIR Subscription (see
// SubscriptionOwner).
type SubscriptionRow struct {
	Tenant, ID string
	Owner      []byte
	Updated    time.Time
}
