package loadgen

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The search data set of issue #4: Patients from SyntheticPatient (with ids)
// and Observations that refer to them, written as NDJSON files that
// `ward import` loads through the ordinary write path (validation, sealing,
// indexing, audit), plus one file of query paths per benchmarked search,
// drawn from the data written, for `ward bench --mix search --paths`.

// DatasetOptions configure GenerateDataset.
type DatasetOptions struct {
	Patients     int   // default 100,000
	Observations int   // default 1,000,000; spread uniformly over the Patients
	Seed         int64 // same seed, same bytes
	// Files is how many NDJSON files each type is split into, so that
	// `ward import --workers N` loads them in parallel (default 8).
	Files int
	// Queries is how many query paths each query file holds (default 2,000).
	Queries int
	// Years is the span of Observation dates, ending at End (default 10).
	Years int
	// End is the latest Observation date (default 2026-01-01 UTC).
	End time.Time
}

// loincCodes are the Observation codes of the data set: common vital signs
// and laboratory results with their UCUM units and plausible ranges.
var loincCodes = []struct {
	code, display, unit, category string
	lo, hi                        float64
}{
	{"8867-4", "Heart rate", "/min", "vital-signs", 45, 140},
	{"9279-1", "Respiratory rate", "/min", "vital-signs", 10, 30},
	{"8310-5", "Body temperature", "Cel", "vital-signs", 35.5, 40.5},
	{"8480-6", "Systolic blood pressure", "mm[Hg]", "vital-signs", 90, 190},
	{"8462-4", "Diastolic blood pressure", "mm[Hg]", "vital-signs", 50, 120},
	{"29463-7", "Body weight", "kg", "vital-signs", 3, 160},
	{"8302-2", "Body height", "cm", "vital-signs", 45, 200},
	{"39156-5", "Body mass index (BMI) [Ratio]", "kg/m2", "vital-signs", 14, 45},
	{"2708-6", "Oxygen saturation in Arterial blood", "%", "vital-signs", 85, 100},
	{"72514-3", "Pain severity - 0-10 verbal numeric rating [Score] - Reported", "{score}", "vital-signs", 0, 10},
	{"2339-0", "Glucose [Mass/volume] in Blood", "mg/dL", "laboratory", 60, 300},
	{"2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", 60, 300},
	{"4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", "laboratory", 4, 12},
	{"2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", 120, 300},
	{"2571-8", "Triglycerides", "mg/dL", "laboratory", 40, 400},
	{"2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory", 20, 100},
	{"18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL", "laboratory", 40, 220},
	{"38483-4", "Creatinine [Mass/volume] in Blood", "mg/dL", "laboratory", 0.4, 3},
	{"6299-2", "Urea nitrogen [Mass/volume] in Blood", "mg/dL", "laboratory", 5, 40},
	{"2947-0", "Sodium [Moles/volume] in Blood", "mmol/L", "laboratory", 130, 150},
	{"6298-4", "Potassium [Moles/volume] in Blood", "mmol/L", "laboratory", 3, 6},
	{"2069-3", "Chloride [Moles/volume] in Blood", "mmol/L", "laboratory", 95, 110},
	{"20565-8", "Carbon dioxide, total [Moles/volume] in Blood", "mmol/L", "laboratory", 20, 32},
	{"49765-1", "Calcium [Mass/volume] in Blood", "mg/dL", "laboratory", 8, 11},
	{"6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory", 3, 15},
	{"718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", "laboratory", 8, 18},
	{"777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", "laboratory", 120, 450},
	{"33914-3", "Glomerular filtration rate/1.73 sq M.predicted", "mL/min/{1.73_m2}", "laboratory", 30, 120},
}

const (
	loincSystem    = "http://loinc.org"
	ucumSystem     = "http://unitsofmeasure.org"
	categorySystem = "http://terminology.hl7.org/CodeSystem/observation-category"
)

// The query files GenerateDataset writes, one path per line relative to the
// FHIR base.
const (
	QueryFamily     = "family"     // Patient?family=<prefix>
	QueryIdentifier = "identifier" // Patient?identifier=<system>|<value>
	QueryBirthdate  = "birthdate"  // Patient?birthdate=<date>
	QueryPatientObs = "patient-obs"
	QueryCodeCount  = "code-count"
	QueryChain      = "chain"
)

// QueryKinds lists the query files in the order the issue names them.
var QueryKinds = []string{QueryFamily, QueryIdentifier, QueryBirthdate, QueryPatientObs, QueryCodeCount, QueryChain}

// DatasetSummary describes what GenerateDataset wrote.
type DatasetSummary struct {
	Patients, Observations int
	PatientBytes, ObsBytes int64
	Files                  []string
}

type patientFacts struct {
	id, family, mrn, birth string
}

// GenerateDataset writes the data set and query files into dir (created if
// needed): patients-NN.ndjson, observations-NN.ndjson and queries/<kind>.txt.
func GenerateDataset(dir string, o DatasetOptions) (*DatasetSummary, error) {
	if o.Patients == 0 {
		o.Patients = 100_000
	}
	if o.Observations == 0 {
		o.Observations = 1_000_000
	}
	if o.Files == 0 {
		o.Files = 8
	}
	if o.Queries == 0 {
		o.Queries = 2000
	}
	if o.Years == 0 {
		o.Years = 10
	}
	if o.End.IsZero() {
		o.End = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if o.Patients < 0 || o.Observations < 0 || o.Files < 0 || o.Queries < 0 || o.Years < 0 {
		return nil, errors.New("loadgen: dataset sizes must be positive")
	}
	if err := os.MkdirAll(filepath.Join(dir, "queries"), 0o755); err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(uint64(o.Seed), 0x5eed0f15ea5e))
	sum := &DatasetSummary{}
	facts := make([]patientFacts, o.Patients)

	// Patients.
	err := writeSplit(dir, "patients", o.Files, o.Patients, sum, func(i int, w *bufio.Writer) (int, error) {
		var p map[string]any
		if err := json.Unmarshal(SyntheticPatient(rng), &p); err != nil {
			return 0, err
		}
		f := patientFacts{id: uuidFrom(rng)}
		p["id"] = f.id
		f.birth, _ = p["birthDate"].(string)
		if names, _ := p["name"].([]any); len(names) > 0 {
			n, _ := names[0].(map[string]any)
			f.family, _ = n["family"].(string)
		}
		if ids, _ := p["identifier"].([]any); len(ids) > 0 {
			id, _ := ids[0].(map[string]any)
			f.mrn, _ = id["value"].(string)
		}
		facts[i] = f
		return writeLine(w, p)
	})
	if err != nil {
		return nil, err
	}
	sum.Patients = o.Patients
	sum.PatientBytes = sizeOf(sum.Files)

	// Observations, spread over the patients at random.
	span := int64(o.Years) * 365 * 24 * 3600
	start := o.End.Unix() - span
	err = writeSplit(dir, "observations", o.Files, o.Observations, sum, func(i int, w *bufio.Writer) (int, error) {
		pf := facts[rng.IntN(len(facts))]
		c := loincCodes[rng.IntN(len(loincCodes))]
		when := time.Unix(start+rng.Int64N(span), 0).UTC()
		v := c.lo + rng.Float64()*(c.hi-c.lo)
		obs := map[string]any{
			"resourceType": "Observation",
			"id":           uuidFrom(rng),
			"status":       "final",
			"category": []any{map[string]any{"coding": []any{map[string]any{
				"system": categorySystem, "code": c.category, "display": strings.ReplaceAll(c.category, "-", " "),
			}}}},
			"code": map[string]any{
				"coding": []any{map[string]any{"system": loincSystem, "code": c.code, "display": c.display}},
				"text":   c.display,
			},
			"subject":           map[string]any{"reference": "Patient/" + pf.id},
			"effectiveDateTime": when.Format(time.RFC3339),
			"issued":            when.Add(time.Duration(rng.IntN(3600)) * time.Second).Format("2006-01-02T15:04:05.000Z07:00"),
			"valueQuantity": map[string]any{
				"value": json.Number(fmt.Sprintf("%.1f", v)), "unit": c.unit, "system": ucumSystem, "code": c.unit,
			},
		}
		return writeLine(w, obs)
	})
	if err != nil {
		return nil, err
	}
	sum.Observations = o.Observations
	sum.ObsBytes = sizeOf(sum.Files) - sum.PatientBytes

	// Queries, drawn from what was written.
	if len(facts) == 0 {
		return sum, nil
	}
	mrnSys := url.QueryEscape(mrnSystem)
	loinc := url.QueryEscape(loincSystem)
	gen := map[string]func() string{
		QueryFamily: func() string {
			f := facts[rng.IntN(len(facts))].family
			n := min(len(f), 3+rng.IntN(2))
			return "Patient?family=" + url.QueryEscape(strings.ToLower(f[:n]))
		},
		QueryIdentifier: func() string {
			return "Patient?identifier=" + mrnSys + "%7C" + facts[rng.IntN(len(facts))].mrn
		},
		QueryBirthdate: func() string {
			return "Patient?birthdate=" + facts[rng.IntN(len(facts))].birth
		},
		QueryPatientObs: func() string {
			d := time.Unix(start+rng.Int64N(span/2), 0).UTC().Format("2006-01-02")
			return "Observation?patient=" + facts[rng.IntN(len(facts))].id + "&code=" + loinc + "%7C" +
				loincCodes[rng.IntN(len(loincCodes))].code + "&date=ge" + d + "&_sort=-date&_count=10"
		},
		QueryCodeCount: func() string {
			return "Observation?code=" + loinc + "%7C" + loincCodes[rng.IntN(len(loincCodes))].code + "&_summary=count"
		},
		QueryChain: func() string {
			return "Observation?subject:Patient.identifier=" + mrnSys + "%7C" + facts[rng.IntN(len(facts))].mrn
		},
	}
	for _, kind := range QueryKinds {
		var b strings.Builder
		for range o.Queries {
			b.WriteString(gen[kind]())
			b.WriteByte('\n')
		}
		name := filepath.Join(dir, "queries", kind+".txt")
		if err := os.WriteFile(name, []byte(b.String()), 0o644); err != nil {
			return nil, err
		}
	}
	return sum, nil
}

// writeSplit writes n lines made by line into files prefix-NN.ndjson.
func writeSplit(dir, prefix string, files, n int, sum *DatasetSummary, line func(i int, w *bufio.Writer) (int, error)) error {
	per := (n + files - 1) / max(files, 1)
	for f := 0; f*per < n; f++ {
		name := filepath.Join(dir, fmt.Sprintf("%s-%02d.ndjson", prefix, f))
		fh, err := os.Create(name)
		if err != nil {
			return err
		}
		w := bufio.NewWriterSize(fh, 1<<20)
		for i := f * per; i < min(n, (f+1)*per); i++ {
			if _, err := line(i, w); err != nil {
				fh.Close()
				return fmt.Errorf("loadgen: %s line %d: %w", name, i-f*per+1, err)
			}
		}
		if err := w.Flush(); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
		sum.Files = append(sum.Files, name)
	}
	return nil
}

func writeLine(w *bufio.Writer, v any) (int, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	b = append(b, '\n')
	return w.Write(b)
}

func sizeOf(files []string) int64 {
	var n int64
	for _, f := range files {
		if st, err := os.Stat(f); err == nil {
			n += st.Size()
		}
	}
	return n
}

// uuidFrom makes a version-4-shaped UUID from r, so that the data set is
// reproducible from its seed.
func uuidFrom(r *rand.Rand) string {
	var b [16]byte
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ReadPaths reads a query file: one path per non-empty line.
func ReadPaths(name string) ([]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("loadgen: %s has no paths", name)
	}
	return out, nil
}
