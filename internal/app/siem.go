package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/config"
	"github.com/wardhealth/ward/internal/siem"
	"github.com/wardhealth/ward/internal/store"
)

// This file wires the SIEM exporters (internal/siem) and the ledger
// workers of `ward serve`: the alert loop and one exporter per configured
// sink, each from its own cursor in the store.

// storeCursor is a siem.Cursor over the store's ledger cursors.
type storeCursor struct {
	st   store.Store
	name string
}

func (c storeCursor) Load(ctx context.Context) (int64, error) {
	seq, _, err := c.st.Cursor(ctx, c.name)
	return seq, err
}

func (c storeCursor) Save(ctx context.Context, seq int64) error {
	return c.st.Commit(ctx, &store.Unit{Parts: []store.Part{store.SaveCursor{Name: c.name, Seq: seq}}})
}

// SIEMCursor is the ledger cursor name of a SIEM sink ("siem-syslog",
// "siem-http").
func SIEMCursor(sink string) string { return "siem-" + sink }

// NewExporter returns the exporter of the ledger of st to sink, from the
// sink's cursor.
func NewExporter(st store.Store, sink siem.Sink, batch int) *siem.Exporter {
	return &siem.Exporter{Ledger: st, Sink: sink, Cursor: storeCursor{st, SIEMCursor(sink.Name())}, Batch: batch}
}

// SIEMSinks builds the sinks that cfg configures (none, syslog, HTTP or
// both).
func SIEMSinks(cfg config.Config) ([]siem.Sink, error) {
	l := cfg.Ledger
	var out []siem.Sink
	if l.SyslogAddr != "" {
		s := &siem.Syslog{Addr: l.SyslogAddr, Host: hostname()}
		if l.SyslogTLSCA != "" || l.SyslogTLS || !config.Loopback(l.SyslogAddr) {
			tc, err := tlsConfig(l.SyslogTLSCA)
			if err != nil {
				return nil, fmt.Errorf("WARD_SIEM_SYSLOG_TLS_CA: %w", err)
			}
			s.TLS = tc
		}
		out = append(out, s)
	}
	if l.HTTPURL != "" {
		tc, err := tlsConfig(l.HTTPCA)
		if err != nil {
			return nil, fmt.Errorf("WARD_SIEM_HTTP_CA: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		out = append(out, &siem.HTTP{URL: l.HTTPURL, Authorization: l.HTTPAuth, Client: &http.Client{Transport: tr, Timeout: 30 * time.Second}})
	}
	return out, nil
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "ward"
	}
	return h
}

// tlsConfig verifies against the CA of the PEM file, or the system roots.
func tlsConfig(caFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return tc, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New("no PEM certificate in the file")
	}
	tc.RootCAs = pool
	return tc, nil
}

// ledgerWorkers are the alert loop and the exporters of a serving node.
type ledgerWorkers struct {
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// StartLedgerWorkers starts, per cfg, the alert loop and the SIEM
// exporters; StopLedgerWorkers (called by Close) stops them. They run on
// every node that calls it: the alert loop's cursor and alerts commit
// together, but two nodes evaluating the same batch would both record its
// alerts, so a cluster should enable alerts (WARD_ALERT_INTERVAL) on one
// node only (docs/alerts.md).
func (a *App) StartLedgerWorkers(cfg config.Config, log *slog.Logger) error {
	var rules = (*AlertRunner)(nil)
	if cfg.Ledger.AlertInterval > 0 {
		c, err := LoadAlertRules(cfg)
		if err != nil {
			return err
		}
		rules = a.NewAlertRunner(c)
	}
	sinks, err := SIEMSinks(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &ledgerWorkers{stop: cancel}
	if rules != nil {
		w.wg.Go(func() { rules.Run(ctx, cfg.Ledger.AlertInterval, log) })
	}
	for _, s := range sinks {
		x := NewExporter(a.Store, s, cfg.Ledger.SIEMBatch)
		w.wg.Go(func() { x.Run(ctx, cfg.Ledger.SIEMInterval, log) })
	}
	a.ledger = w
	return nil
}

func (a *App) stopLedgerWorkers() {
	if a.ledger != nil {
		a.ledger.stop()
		a.ledger.wg.Wait()
		a.ledger = nil
	}
}

// ExportLedger writes the ledger records after seq that are not older than
// since to w, one a line: JSON lines, or RFC 5424 syslog messages
// (newline-delimited, RFC 6587 §3.4.2: a message holds no newline), for
// `ward audit export`. It returns how many it wrote.
func ExportLedger(ctx context.Context, st store.Ledger, w io.Writer, after int64, since time.Time, format string) (int, error) {
	host := hostname()
	n := 0
	var buf []byte
	err := st.AuditScan(ctx, after, func(_ audit.Head, recs iter.Seq2[*audit.Record, error]) error {
		for r, err := range recs {
			if err != nil {
				return err
			}
			if r.Time.Before(since) {
				continue
			}
			buf = buf[:0]
			switch format {
			case "syslog":
				buf = append(siem.AppendSyslog(buf, host, r), '\n')
			default:
				buf = siem.AppendJSON(buf, r)
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}
