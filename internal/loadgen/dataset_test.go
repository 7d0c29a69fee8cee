package loadgen

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The data set is reproducible from its seed, every line is a resource with
// an id, every Observation refers to a Patient of the set, and every query
// file holds the asked number of paths of the right type.
func TestGenerateDataset(t *testing.T) {
	o := DatasetOptions{Patients: 50, Observations: 400, Files: 3, Queries: 7, Seed: 3}
	a, b := t.TempDir(), t.TempDir()
	sa, err := GenerateDataset(a, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GenerateDataset(b, o); err != nil {
		t.Fatal(err)
	}
	if sa.Patients != 50 || sa.Observations != 400 || len(sa.Files) != 6 {
		t.Fatalf("summary %+v", sa)
	}
	patients := map[string]bool{}
	counts := map[string]int{}
	for _, f := range sa.Files {
		x, _ := os.ReadFile(f)
		y, _ := os.ReadFile(filepath.Join(b, filepath.Base(f)))
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with one seed", filepath.Base(f))
		}
		sc := bufio.NewScanner(bytes.NewReader(x))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r struct {
				ResourceType, ID string
				Subject          struct{ Reference string }
			}
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil || r.ID == "" {
				t.Fatalf("%s: bad line %q (%v)", f, sc.Text(), err)
			}
			counts[r.ResourceType]++
			switch r.ResourceType {
			case "Patient":
				patients[r.ID] = true
			case "Observation":
				if !patients[strings.TrimPrefix(r.Subject.Reference, "Patient/")] {
					t.Fatalf("Observation %s refers to %q, not a Patient written before it", r.ID, r.Subject.Reference)
				}
			}
		}
	}
	if counts["Patient"] != 50 || counts["Observation"] != 400 {
		t.Errorf("counts %v", counts)
	}
	for _, kind := range QueryKinds {
		paths, err := ReadPaths(filepath.Join(a, "queries", kind+".txt"))
		if err != nil {
			t.Fatal(err)
		}
		want := "Observation?"
		if kind == QueryFamily || kind == QueryIdentifier || kind == QueryBirthdate {
			want = "Patient?"
		}
		if len(paths) != 7 || !strings.HasPrefix(paths[0], want) {
			t.Errorf("%s: %d paths, first %q", kind, len(paths), paths[0])
		}
	}
}
