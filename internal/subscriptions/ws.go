package subscriptions

// The R4 websocket channel: a client opens a websocket, sends
// "bind <id>" (with its access token in the upgrade's Authorization
// header, or as "bind <id> <token>"), the server answers "bound <id>"
// once the token's subject may read that Subscription, and sends
// "ping <id>" for each of its notifications. A ping names nothing but
// the Subscription: the client then searches, with its own access.

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"

	"github.com/wardhealth/ward/internal/authz"
)

// Verify turns an access token into its subject (authn).
type Verify func(ctx context.Context, token string) (authz.Subject, error)

// maxBinds bounds the Subscriptions one connection may bind.
const maxBinds = 32

// ServeWS serves one websocket client until it goes away or ctx ends.
func (m *Manager) ServeWS(w http.ResponseWriter, r *http.Request, verify Verify, requestID string) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the client
	}
	defer c.CloseNow()
	c.SetReadLimit(4096)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	pings := make(chan string, 64)
	header := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	go m.readBinds(ctx, cancel, c, pings, verify, header, requestID)
	for {
		select {
		case <-ctx.Done():
			c.Close(websocket.StatusNormalClosure, "")
			return
		case msg := <-pings:
			wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
			err := c.Write(wctx, websocket.MessageText, []byte(msg))
			wcancel()
			if err != nil {
				return
			}
		}
	}
}

// readBinds reads the client's bind requests and binds them.
func (m *Manager) readBinds(ctx context.Context, cancel context.CancelFunc, c *websocket.Conn, out chan string, verify Verify, header, requestID string) {
	defer cancel()
	var unbind []func()
	defer func() {
		for _, u := range unbind {
			u()
		}
	}()
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		if typ != websocket.MessageText {
			continue
		}
		id, err := m.bindOne(ctx, string(b), verify, header, requestID, len(unbind))
		if err != nil {
			reply(ctx, out, "error "+err.Error())
			continue
		}
		unbind = append(unbind, m.hub.bind(id[0], id[1], out))
		reply(ctx, out, "bound "+id[1])
	}
}

func reply(ctx context.Context, out chan string, msg string) {
	select {
	case out <- msg:
	case <-ctx.Done():
	}
}

// bindOne checks one "bind <id> [token]" message: the token's subject
// must read the Subscription (a read, decided and audited), and it must
// be a websocket one. It returns tenant and id.
func (m *Manager) bindOne(ctx context.Context, msg string, verify Verify, header, requestID string, bound int) ([2]string, error) {
	f := strings.Fields(msg)
	if len(f) < 2 || len(f) > 3 || f[0] != "bind" || len(f[1]) > 64 {
		return [2]string{}, errors.New("expected: bind <id>")
	}
	if bound >= maxBinds {
		return [2]string{}, errors.New("too many bindings on one connection")
	}
	token := header
	if len(f) == 3 {
		token = f[2]
	}
	if token == "" {
		return [2]string{}, errors.New("an access token is required")
	}
	subj, err := verify(ctx, token)
	if err != nil {
		return [2]string{}, errors.New("the access token is invalid or expired")
	}
	res, err := m.rec.For(subj, requestID).Read(ctx, "Subscription", f[1])
	if err != nil {
		return [2]string{}, errors.New("no such Subscription for this token")
	}
	d, err := docOfJSON(res.JSON)
	if err != nil {
		return [2]string{}, err
	}
	if ch, _ := d["channel"].(map[string]any); ch == nil || ch["type"] != ChannelWS {
		return [2]string{}, errors.New("not a websocket Subscription")
	}
	return [2]string{subj.Tenant, f[1]}, nil
}
