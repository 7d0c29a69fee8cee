package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app"
	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/audit"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/siem"
	"github.com/wardhealth/ward/internal/store"
)

// plantedPHI are identifying values written into Patients whose reads
// and searches are then in the ledger; no SIEM output may contain any.
var plantedPHI = []string{"Quuxworth", "Zebediah", "1931-04-05", "MRN-7734291", "555-0199-314", "42 Wallaby Way", "zeb.q@example.org"}

const siemPHIPatient = `{"resourceType":"Patient","name":[{"family":"Quuxworth","given":["Zebediah"]}],"birthDate":"1931-04-05",
"identifier":[{"system":"urn:mrn","value":"MRN-7734291"}],"telecom":[{"system":"phone","value":"555-0199-314"},{"system":"email","value":"zeb.q@example.org"}],
"address":[{"line":["42 Wallaby Way"],"city":"Sydney"}]}`

// ledgerWithPHI writes Patients holding plantedPHI, reads and searches
// them (by name, identifier and birth date), and adds n synthetic records
// so the stream is long; it returns the head seq.
func ledgerWithPHI(t *testing.T, w *apptest.Ward, n int) int64 {
	t.Helper()
	A := w.Tokens[authz.RoleAdmin]
	for range 3 {
		id := w.Create(t, authz.RoleAdmin, siemPHIPatient)
		for _, p := range []string{"/fhir/Patient/" + id, "/fhir/Patient?family=Quuxworth", "/fhir/Patient?identifier=urn:mrn|MRN-7734291", "/fhir/Patient?birthdate=1931-04-05"} {
			if r := w.Do(t, "GET", p, A, nil); r.Status != 200 {
				t.Fatalf("GET %s: %d", p, r.Status)
			}
		}
	}
	appendRecords(t, w.App.Store, n)
	h, err := w.App.Store.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h.Seq
}

func appendRecords(t *testing.T, st store.Store, n int) {
	t.Helper()
	recs := make([]*audit.Record, n)
	for i := range recs {
		recs[i] = &audit.Record{Time: time.Now().UTC(), Tenant: "default", RequestID: fmt.Sprint("synthetic-", i), Actor: "u-synthetic",
			Role: "nurse", Action: "read", ResourceType: "Observation", Entities: []string{fmt.Sprint("Observation/o", i, "/_history/1")}}
	}
	if err := store.NewRecorder(st).Record(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// failSave is a cursor whose next save fails: a node that dies after the
// sink took a batch and before the cursor was saved.
type failSave struct{ siem.Cursor }

func (failSave) Save(context.Context, int64) error {
	return errors.New("node killed before saving the cursor")
}

// drain steps x until it is caught up.
func drain(t *testing.T, x *siem.Exporter) {
	t.Helper()
	for range 1000 {
		n, err := x.Step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatal("exporter never caught up")
}

// checkDelivery asserts every seq 1..head delivered and counts duplicates,
// which at-least-once allows only for the batch whose cursor was lost.
func checkDelivery(t *testing.T, seqs []int64, head int64, wantDup int) {
	t.Helper()
	seen := map[int64]int{}
	for _, s := range seqs {
		seen[s]++
	}
	for s := int64(1); s <= head; s++ {
		if seen[s] == 0 {
			t.Fatalf("seq %d never delivered (gap)", s)
		}
	}
	if int64(len(seen)) != head {
		t.Errorf("%d distinct seqs delivered, head is %d", len(seen), head)
	}
	dup := len(seqs) - len(seen)
	t.Logf("delivered %d messages for %d records: %d duplicates", len(seqs), head, dup)
	if dup != wantDup {
		t.Errorf("%d duplicates, want %d (the one batch whose cursor save was lost)", dup, wantDup)
	}
}

func noPHI(t *testing.T, what string, b []byte) {
	t.Helper()
	for _, v := range plantedPHI {
		if bytes.Contains(bytes.ToLower(b), bytes.ToLower([]byte(v))) {
			t.Errorf("%s contains planted PHI %q", what, v)
		}
	}
}

// TestSIEMSyslogThroughRestarts streams the ledger to a real rsyslogd over
// plain TCP and over TLS; the Ward node stops mid-stream after a delivery
// whose cursor it never saved, rsyslogd restarts, a new node resumes from
// the cursor, the ledger keeps growing: every seq arrives, duplicates are
// exactly the unsaved batch, and rsyslog parsed every message as RFC 5424
// with no PHI in any of them.
func TestSIEMSyslogThroughRestarts(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[tlsOn], func(t *testing.T) {
			w := apptest.Start(t, apptest.SQLite)
			st := w.App.Store
			head := ledgerWithPHI(t, w, 300)
			rs := startRsyslog(t, tlsOn)
			cfg := w.Config
			cfg.Ledger.SyslogAddr = rs.Addr
			cfg.Ledger.SyslogTLSCA = rs.CA
			node := func() *siem.Exporter {
				sinks, err := app.SIEMSinks(cfg)
				if err != nil || len(sinks) != 1 {
					t.Fatalf("sinks: %v %v", sinks, err)
				}
				if s := sinks[0].(*siem.Syslog); (s.TLS != nil) != tlsOn {
					t.Fatalf("TLS = %v, want %v", s.TLS != nil, tlsOn)
				}
				return app.NewExporter(st, sinks[0], 50)
			}
			x := node()
			for range 3 {
				if n, err := x.Step(context.Background()); err != nil || n != 50 {
					t.Fatalf("step: %d %v", n, err)
				}
			}
			// The node is killed between a delivery and its cursor save.
			killed := *x
			killed.Cursor = failSave{x.Cursor}
			if _, err := killed.Step(context.Background()); err == nil {
				t.Fatal("the cursor save did not fail")
			}
			x.Sink.Close()
			rs.WaitFor(200)
			rs.Restart()
			// A new node resumes from the saved cursor; the ledger grows.
			x = node()
			drain(t, x)
			appendRecords(t, st, 120)
			drain(t, x)
			x.Sink.Close()
			head += 120
			checkDelivery(t, rs.WaitFor(int(head)+50), head, 50)
			lines, _ := rs.Lines()
			for _, l := range lines {
				if !strings.HasPrefix(l, "1|ward|") {
					t.Fatalf("rsyslog did not parse an RFC 5424 message from Ward: %s", l)
				}
			}
			b, _ := os.ReadFile(rs.Out)
			noPHI(t, "rsyslog's file", b)
		})
	}
}

// TestSIEMHTTPJSONLines POSTs the ledger as JSON lines to an HTTPS
// receiver that refuses one batch (500) and loses the answer of another:
// every seq arrives, duplicates only from the lost answer, no PHI.
func TestSIEMHTTPJSONLines(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	head := ledgerWithPHI(t, w, 200)
	var mu sync.Mutex
	var got []int64
	var body bytes.Buffer
	posts := 0
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		posts++
		if r.Method != "POST" || r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("Authorization") != "Splunk s3cret" {
			t.Errorf("%s with %s", r.Method, r.Header.Get("Content-Type"))
		}
		if posts == 2 {
			rw.WriteHeader(500) // refused: not delivered
			return
		}
		b, _ := io.ReadAll(r.Body)
		body.Write(b)
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev siem.Event
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				t.Errorf("not a JSON line: %v", err)
			}
			got = append(got, ev.Seq)
		}
		if posts == 4 {
			// Taken, but the answer is lost: the batch comes again.
			hj, _ := rw.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
		}
	}))
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	cfg := w.Config
	cfg.Ledger.HTTPURL, cfg.Ledger.HTTPCA, cfg.Ledger.HTTPAuth = srv.URL+"/ingest", ca, "Splunk s3cret"
	sinks, err := app.SIEMSinks(cfg)
	if err != nil {
		t.Fatal(err)
	}
	x := app.NewExporter(w.App.Store, sinks[0], 40)
	failures := 0
	for range 100 {
		n, err := x.Step(context.Background())
		if err != nil {
			failures++
			continue
		}
		if n == 0 {
			break
		}
	}
	if failures != 2 {
		t.Errorf("%d failed deliveries, want 2", failures)
	}
	mu.Lock()
	defer mu.Unlock()
	checkDelivery(t, got, head, 40)
	noPHI(t, "JSON lines", body.Bytes())
	// Without a CA the receiver's self-signed certificate is refused.
	cfg.Ledger.HTTPCA = ""
	appendRecords(t, w.App.Store, 1)
	sinks, _ = app.SIEMSinks(cfg)
	if _, err := app.NewExporter(w.App.Store, sinks[0], 40).Step(context.Background()); err == nil {
		t.Error("an unverified HTTPS receiver was accepted")
	}
}

// TestExportLedger is `ward audit export`: JSON lines or syslog lines,
// after a seq or since a time, no PHI.
func TestExportLedger(t *testing.T) {
	w := apptest.Start(t, apptest.SQLite)
	head := ledgerWithPHI(t, w, 10)
	for _, format := range []string{"json", "syslog"} {
		var out bytes.Buffer
		n, err := app.ExportLedger(context.Background(), w.App.Store, &out, head-5, time.Time{}, format)
		if err != nil || n != 5 || strings.Count(out.String(), "\n") != 5 {
			t.Fatalf("%s after %d: %d records, %v:\n%s", format, head-5, n, err, out.String())
		}
		if !strings.Contains(out.String(), fmt.Sprintf(`"seq":%d`, head)) {
			t.Errorf("%s: the head record is missing", format)
		}
		out.Reset()
		if n, err = app.ExportLedger(context.Background(), w.App.Store, &out, 0, time.Time{}, format); err != nil || int64(n) != head {
			t.Fatalf("%s: %d of %d records, %v", format, n, head, err)
		}
		noPHI(t, format+" export", out.Bytes())
		out.Reset()
		if n, _ = app.ExportLedger(context.Background(), w.App.Store, &out, 0, time.Now().Add(time.Hour), format); n != 0 {
			t.Errorf("%s since the future: %d records", format, n)
		}
	}
}
