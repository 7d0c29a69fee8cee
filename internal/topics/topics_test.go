package topics

import (
	"errors"
	"testing"
)

func TestCriteria(t *testing.T) {
	for _, c := range []struct {
		url, filter, want string
		err               bool
	}{
		{Base + "resource-change", "Observation?code=http://loinc.org|1", "Observation?code=http://loinc.org|1", false},
		{Base + "resource-change", "Observation", "Observation", false},
		{Base + "resource-change", "", "", true},
		{Base + "observation-final", "", "Observation?status=final", false},
		{Base + "observation-final|1.0", "Observation?code=x", "Observation?status=final&code=x", false},
		{Base + "observation-final", "Patient?name=x", "", true},
		{Base + "patient-change", "Patient?gender=female", "Patient?gender=female", false},
		{"http://example.org/nosuch", "Observation", "", true},
	} {
		got, err := Criteria(c.url, c.filter)
		if (err != nil) != c.err || got != c.want {
			t.Errorf("Criteria(%q, %q) = %q, %v; want %q (error %v)", c.url, c.filter, got, err, c.want, c.err)
		}
	}
	if _, err := Criteria("http://example.org/nosuch", "Observation"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown topic: %v", err)
	}
}

func TestTriggers(t *testing.T) {
	if Triggers(Base+"observation-final", "delete") || !Triggers(Base+"observation-final", "update") || !Triggers(Base+"resource-change", "delete") {
		t.Fatal("triggers do not follow the topic's interactions")
	}
}

func TestRegistryShape(t *testing.T) {
	seen := map[string]bool{}
	for _, tp := range All() {
		if seen[tp.URL()] || len(tp.Interactions) == 0 {
			t.Fatalf("topic %s: duplicate or without interactions", tp.ID)
		}
		seen[tp.URL()] = true
		b := tp.Basic()
		if b["resourceType"] != "Basic" || b["id"] != tp.ID {
			t.Fatalf("Basic of %s: %v", tp.ID, b)
		}
		if got, ok := ByURL(tp.URL()); !ok || got.ID != tp.ID {
			t.Fatalf("ByURL(%s)", tp.URL())
		}
	}
	if l := List([]string{Base + "patient-change", "http://x"})["parameter"].([]any); len(l) != 1 {
		t.Fatalf("topic-list filtered by url: %v", l)
	}
}
