package subscriptions

// Heartbeats (Backport IG): a rest-hook Subscription with a heartbeat
// period and a payload gets a heartbeat Bundle when nothing else was
// sent to it for that long. Only the node holding its receiver's lease
// sends them, as only it delivers.

import (
	"context"
	"time"
)

// heartbeats ticks until ctx ends.
func (m *Manager) heartbeats(ctx context.Context, tick time.Duration) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, k := range m.due(now) {
				m.beat(ctx, k)
			}
		}
	}
}

// due are the sinks whose heartbeat is due now on this node.
func (m *Manager) due(now time.Time) []*sink {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*sink
	for name, r := range m.running {
		k := r.sink
		if k.sub.Heartbeat <= 0 || k.sub.Channel != ChannelRestHook || k.sub.Payload == "" || m.holds == nil || !m.holds(name) {
			continue
		}
		if now.Sub(time.Unix(0, k.last.Load())) >= time.Duration(k.sub.Heartbeat)*time.Second {
			out = append(out, k)
		}
	}
	return out
}

func (m *Manager) beat(ctx context.Context, k *sink) {
	k.last.Store(time.Now().UnixNano())
	b, err := k.sub.Bundle("heartbeat", m.base, k.sent.Load(), 0, time.Now(), nil)
	if err != nil {
		return
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := m.post(hctx, k.sub, b); err != nil {
		m.failed(ctx, k.sub, err)
	}
}
