package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func eventsNATS(t *testing.T) string {
	u := os.Getenv("WARD_TEST_NATS")
	if u == "" {
		if os.Getenv("WARD_TEST_REQUIRE_NATS") != "" || os.Getenv("CI") == "true" {
			t.Fatal("WARD_TEST_NATS is required")
		}
		t.Skip("no NATS (WARD_TEST_NATS)")
	}
	return u
}

// TestKill9DuringDispatch: ward serve writes Patients (with planted
// names) and publishes their events to JetStream; it is killed with
// SIGKILL mid-dispatch and restarted. Every acknowledged create has its
// patient.created event in the stream (nothing lost), the stream holds
// each event id once (re-publishes after the restart are dropped by
// Nats-Msg-Id and counted here as the outbox events published twice
// would be), no message carries a planted name, and `ward events status`
// shows the receiver caught up.
func TestKill9DuringDispatch(t *testing.T) {
	nu := eventsNATS(t)
	prefix := fmt.Sprintf("wk%d", time.Now().UnixNano()%1e9)
	env := []string{"WARD_EVENTS_NATS_URL=" + nu, "WARD_EVENTS_NATS_PREFIX=" + prefix, "WARD_API_RATE_LIMIT=0"}
	dir := filepath.Join(t.TempDir(), "ward-data")
	s := serveWith(t, dir, env)
	if _, stderr, code := ward(t, pass+"\n", "users", "add", "--data-dir", dir, "--username", "smoke", "--role", "admin", "--password-stdin"); code != 0 {
		t.Fatal(stderr)
	}
	tok := s.token(t, "smoke", pass)

	var mu sync.Mutex
	acked := map[string]bool{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("Plantedname%dx%d", w, i)
				req, _ := http.NewRequest("POST", "http://"+s.addr+"/fhir/Patient", strings.NewReader(`{"resourceType":"Patient","name":[{"family":"`+name+`"}],"birthDate":"1944-02-29"}`))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/fhir+json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return // the server is gone
				}
				var out struct{ ID string }
				json.NewDecoder(resp.Body).Decode(&out)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					return
				}
				id := out.ID
				mu.Lock()
				acked[id] = true
				mu.Unlock()
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond)
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	close(stop)
	wg.Wait()
	if len(acked) < 20 {
		t.Fatalf("only %d creates before the kill", len(acked))
	}

	s2 := serveWith(t, dir, env)
	_ = s2
	nc, err := nats.Connect(nu)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	stream := strings.ToUpper(prefix) + "_EVENTS_default"
	t.Cleanup(func() {
		js.DeleteStream(ctx, stream)
		js.DeleteStream(ctx, strings.ToUpper(prefix)+"_EVENTS__system")
	})

	// Wait until the restarted node has caught up.
	lag := regexp.MustCompile(`nats: position \d+, lag 0 events`)
	deadline := time.Now().Add(60 * time.Second)
	var status string
	for {
		out, stderr, code := wardWith(t, nil, "", "events", "status", "--data-dir", dir)
		status = out
		if code != 0 {
			t.Fatalf("events status: %s", stderr)
		}
		if lag.MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher did not catch up: %s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("after restart: %s", strings.TrimSpace(status))

	st, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := st.Info(ctx)
	n := int(info.State.Msgs)
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]int{}
	created := map[string]bool{}
	got := 0
	for got < n {
		batch, err := c.Fetch(min(500, n-got), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		k := 0
		for m := range batch.Messages() {
			k++
			got++
			body := string(m.Data())
			if strings.Contains(body, "Plantedname") || strings.Contains(body, "1944-02-29") {
				t.Fatalf("PHI on NATS: %s", body)
			}
			var e struct {
				ID, Type string
				Data     struct{ ID string }
			}
			json.Unmarshal(m.Data(), &e)
			ids[e.ID]++
			if e.Type == "patient.created" {
				created[e.Data.ID] = true
			}
		}
		if k == 0 {
			t.Fatalf("fetched %d of %d messages", got, n)
		}
	}
	lost := 0
	for id := range acked {
		if !created[id] {
			lost++
		}
	}
	dups := 0
	for _, k := range ids {
		dups += k - 1
	}
	t.Logf("kill -9 mid-dispatch: %d creates acknowledged, %d events in the stream, %d lost, %d duplicate messages", len(acked), n, lost, dups)
	if lost > 0 {
		t.Fatalf("%d acknowledged creates have no patient.created event", lost)
	}
	sys, err := js.Stream(ctx, strings.ToUpper(prefix)+"_EVENTS__system")
	if err != nil {
		t.Fatal(err)
	}
	sysInfo, _ := sys.Info(ctx)
	if outbox := regexp.MustCompile(`outbox: (\d+) events`).FindStringSubmatch(status); outbox == nil || outbox[1] != fmt.Sprint(len(ids)+int(sysInfo.State.Msgs)) {
		t.Fatalf("the streams hold %d+%d distinct events, the outbox %v", len(ids), sysInfo.State.Msgs, outbox)
	}
	if !strings.Contains(status, "dead letters 0") {
		t.Fatalf("dead letters: %s", status)
	}
	if dups > 0 {
		t.Fatalf("%d duplicate messages in the stream despite Nats-Msg-Id", dups)
	}
}
