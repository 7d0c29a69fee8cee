package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/bulk"
)

// asyncAnswer is the final answer of an asynchronous request.
type asyncAnswer struct {
	ResourceType, Type string
	Entry              []struct {
		Resource struct {
			ResourceType, Type string
			Total              *int
			Link               []struct{ Relation, URL string }
			Entry              []struct {
				Resource struct{ ResourceType, ID string }
			}
			Issue []struct{ Diagnostics string }
		}
		Response struct{ Status string }
	}
}

// asyncKickoff sends path with Prefer: respond-async and returns the
// status path.
func asyncKickoff(t *testing.T, w *apptest.Ward, tok, path string) string {
	t.Helper()
	r := w.Do(t, "GET", path, tok, nil, "Prefer: respond-async")
	if r.Status != http.StatusAccepted {
		t.Fatalf("kick-off %s: %d %s", path, r.Status, r.Body)
	}
	loc := r.Header.Get("Content-Location")
	if !strings.HasPrefix(loc, w.Server.URL+"/bulk/export/") {
		t.Fatalf("Content-Location %q", loc)
	}
	return strings.TrimPrefix(loc, w.Server.URL)
}

// awaitAsync polls status until the answer is there.
func awaitAsync(t *testing.T, w *apptest.Ward, tok, status string) asyncAnswer {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := w.Do(t, "GET", status, tok, nil)
		switch r.Status {
		case http.StatusAccepted:
			if r.Header.Get("X-Progress") == "" {
				t.Fatalf("202 without X-Progress: %v", r.Header)
			}
			if time.Now().After(deadline) {
				t.Fatal("asynchronous request not done in time")
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case http.StatusOK:
			var a asyncAnswer
			if err := json.Unmarshal(r.Body, &a); err != nil {
				t.Fatal(err)
			}
			if a.ResourceType != "Bundle" || a.Type != "batch-response" || len(a.Entry) != 1 {
				t.Fatalf("not a batch-response of one entry: %s", r.Body)
			}
			return a
		default:
			t.Fatalf("status %s: %d %s", status, r.Status, r.Body)
		}
	}
}

func entryIDs(a asyncAnswer) []string {
	var out []string
	for _, e := range a.Entry[0].Resource.Entry {
		out = append(out, e.Resource.ResourceType+"/"+e.Resource.ID)
	}
	return union(out, nil)
}

func TestAsyncRequests(t *testing.T) {
	forEachBackend(t, func(t *testing.T, w *apptest.Ward) {
		tok := w.Tokens[authz.RoleAdmin]
		const family = "Zyxwvutsrq"
		pid := w.Create(t, authz.RoleAdmin, `{"resourceType":"Patient","name":[{"family":"`+family+`"}],"gender":"female"}`)
		var obs []string
		for i := 0; i < 3; i++ {
			obs = append(obs, "Observation/"+w.Create(t, authz.RoleAdmin, `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/`+pid+`"}}`))
		}
		js := w.App.Store.(bulk.Store)
		ctx := context.Background()

		// While the job waits, the status URL answers 202 with
		// X-Progress; the request is sealed in the job, never in clear.
		w.App.Bulk.Stop()
		status := asyncKickoff(t, w, tok, "/fhir/Patient?family="+family)
		job := strings.TrimPrefix(status, "/bulk/export/")
		r := w.Do(t, "GET", status, tok, nil)
		if r.Status != http.StatusAccepted || r.Header.Get("X-Progress") == "" {
			t.Fatalf("queued: %d %v", r.Status, r.Header)
		}
		j, err := js.ExportJob(ctx, "default", job)
		if err != nil {
			t.Fatal(err)
		}
		if j.Kind != bulk.KindAsync || strings.Contains(j.Request, family) || !strings.HasPrefix(j.Request, "sealed:") {
			t.Fatalf("job %s request %q", j.Kind, j.Request)
		}
		// Only the requester sees it.
		if r := w.Do(t, "GET", status, w.Tokens[authz.RolePhysician], nil); r.Status != http.StatusNotFound {
			t.Fatalf("another user polled: %d", r.Status)
		}
		w.App.Bulk.Start()
		a := awaitAsync(t, w, tok, status)
		e := a.Entry[0]
		if e.Response.Status != "200 OK" || e.Resource.Type != "searchset" || e.Resource.Total == nil || *e.Resource.Total != 1 ||
			strings.Join(entryIDs(a), " ") != "Patient/"+pid {
			t.Fatalf("type-level answer: %+v", e)
		}
		for _, l := range e.Resource.Link {
			if !strings.HasPrefix(l.URL, w.URL+"/Patient?") {
				t.Fatalf("link %q is not under the kick-off's base", l.URL)
			}
		}
		// The answer is sealed at rest.
		chunk, err := js.ExportChunk(ctx, job, 0, 0)
		if err != nil || strings.Contains(string(chunk), family) || strings.Contains(string(chunk), pid) {
			t.Fatalf("stored answer: %v", err)
		}
		// Kick-off and download are audited; the download names what
		// the answer disclosed.
		var kicked, named bool
		for _, rec := range w.Ledger(t) {
			if rec.Detail == "job:"+job && rec.Action == "async-kickoff" {
				kicked = true
			}
			if rec.Detail == "job:"+job && rec.Action == "async-download" && strings.HasPrefix(strings.Join(rec.Entities, " "), "Patient/"+pid+"/_history/1") {
				named = true
			}
		}
		if !kicked || !named {
			t.Fatalf("ledger: kick-off %v, download %v", kicked, named)
		}

		// System level, with paging: the same answer as synchronously.
		a = awaitAsync(t, w, tok, asyncKickoff(t, w, tok, "/fhir?_type=Observation&_count=2"))
		if e := a.Entry[0]; *e.Resource.Total != 3 || len(e.Resource.Entry) != 2 || !strings.Contains(strings.Join(linkRels(e.Resource.Link), " "), "next") {
			t.Fatalf("system level: %+v", e)
		}
		// $everything.
		a = awaitAsync(t, w, tok, asyncKickoff(t, w, tok, "/fhir/Patient/"+pid+"/$everything"))
		if got := strings.Join(entryIDs(a), " "); got != strings.Join(union(obs, []string{"Patient/" + pid}), " ") {
			t.Fatalf("$everything: %s", got)
		}
		// A request that fails answers its OperationOutcome in the entry.
		a = awaitAsync(t, w, tok, asyncKickoff(t, w, tok, "/fhir/Patient?_count=many"))
		if e := a.Entry[0]; !strings.HasPrefix(e.Response.Status, "400") || e.Resource.ResourceType != "OperationOutcome" {
			t.Fatalf("failed request: %+v", e)
		}
		// Nothing is queued without a token.
		if r := w.Do(t, "GET", "/fhir/Patient?_id="+pid, "", nil, "Prefer: respond-async"); r.Status != http.StatusUnauthorized {
			t.Fatalf("no token: %d", r.Status)
		}

		// DELETE cancels: the job and its output are gone.
		w.App.Bulk.Stop()
		status = asyncKickoff(t, w, tok, "/fhir/Observation?subject=Patient/"+pid)
		if r := w.Do(t, "DELETE", status, tok, nil); r.Status != http.StatusAccepted {
			t.Fatalf("cancel: %d %s", r.Status, r.Body)
		}
		w.App.Bulk.Start()
		if r := w.Do(t, "GET", status, tok, nil); r.Status != http.StatusNotFound {
			t.Fatalf("cancelled job: %d", r.Status)
		}
	})
}

func linkRels(ls []struct{ Relation, URL string }) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Relation)
	}
	return out
}
