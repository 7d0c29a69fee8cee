package siem

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/wardhealth/ward/internal/audit"
)

// Sink delivers a batch of records. Send returns nil only once the whole
// batch is acknowledged; after an error the batch is sent again whole.
type Sink interface {
	Send(ctx context.Context, recs []*audit.Record) error
	Name() string
	Close() error
}

// Syslog sends RFC 5424 messages over one TCP or TLS connection, framed by
// octet counting (RFC 6587 §3.4.1), redialling after any failure.
type Syslog struct {
	Addr string
	TLS  *tls.Config // nil: plain TCP (allowed by config on loopback only)
	Host string      // the HOSTNAME field
	// Timeout bounds a dial and a batch write (10s when zero).
	Timeout time.Duration

	conn net.Conn
	buf  []byte
}

// Name implements Sink.
func (s *Syslog) Name() string { return "syslog" }

func (s *Syslog) timeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout
	}
	return 10 * time.Second
}

// Send implements Sink: the batch in one write, then done. A failed
// write drops the connection, so the next Send starts a new one.
func (s *Syslog) Send(ctx context.Context, recs []*audit.Record) error {
	if s.conn != nil && !alive(s.conn) {
		s.conn.Close()
		s.conn = nil
	}
	if s.conn == nil {
		d := &net.Dialer{Timeout: s.timeout()}
		var c net.Conn
		var err error
		if s.TLS != nil {
			c, err = (&tls.Dialer{NetDialer: d, Config: s.TLS}).DialContext(ctx, "tcp", s.Addr)
		} else {
			c, err = d.DialContext(ctx, "tcp", s.Addr)
		}
		if err != nil {
			return fmt.Errorf("syslog: connect: %w", err)
		}
		s.conn = c
	}
	s.buf = s.buf[:0]
	var msg []byte
	for _, r := range recs {
		msg = AppendSyslog(msg[:0], s.Host, r)
		s.buf = Frame(s.buf, msg)
	}
	_ = s.conn.SetWriteDeadline(time.Now().Add(s.timeout()))
	if _, err := s.conn.Write(s.buf); err != nil {
		s.conn.Close()
		s.conn = nil
		return fmt.Errorf("syslog: write: %w", err)
	}
	return nil
}

// alive reports whether the receiver has not closed c. A syslog receiver
// never writes, so a read that does not time out at once means it closed
// (or reset) the connection: the next batch goes to a new one instead of
// into a socket whose data the peer will drop.
func alive(c net.Conn) bool {
	_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close implements Sink.
func (s *Syslog) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// HTTP POSTs each batch as JSON lines (application/x-ndjson); any 2xx
// acknowledges it.
type HTTP struct {
	URL    string
	Client *http.Client
	// Authorization, if set, is sent as the Authorization header.
	Authorization string
}

// Name implements Sink.
func (h *HTTP) Name() string { return "http" }

// Send implements Sink.
func (h *HTTP) Send(ctx context.Context, recs []*audit.Record) error {
	var body []byte
	for _, r := range recs {
		body = AppendJSON(body, r)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("siem http: request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if h.Authorization != "" {
		req.Header.Set("Authorization", h.Authorization)
	}
	resp, err := h.Client.Do(req)
	if err != nil {
		return fmt.Errorf("siem http: post: %w", errors.Unwrap(err))
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("siem http: receiver answered %d", resp.StatusCode)
	}
	return nil
}

// Close implements Sink.
func (h *HTTP) Close() error { h.Client.CloseIdleConnections(); return nil }
