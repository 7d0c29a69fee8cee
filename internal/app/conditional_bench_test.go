package app_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/wardhealth/ward/internal/app/apptest"
	"github.com/wardhealth/ward/internal/authz"
	"github.com/wardhealth/ward/internal/loadgen"
)

// Conditional interactions cost a search before the write and a guard
// re-check inside the write transaction (a guarded unit opens its own
// group-commit batch).

// BenchmarkConditionalCreate: If-None-Exist with a new identifier each
// time (search, create, guard) and with an existing one (search, no
// write, audited disclosure).
func BenchmarkConditionalCreate(b *testing.B) {
	for _, be := range apptest.Backends {
		for _, existing := range []bool{false, true} {
			name := string(be) + "/new"
			if existing {
				name = string(be) + "/existing"
			}
			b.Run(name, func(b *testing.B) {
				w, c, _ := benchServer(b, be)
				var n atomic.Int64
				b.ResetTimer()
				for range b.N {
					i := n.Add(1)
					if existing {
						i = 1
					}
					ident := fmt.Sprintf("bench-%d", i)
					body := []byte(`{"resourceType":"Patient","identifier":[{"system":"urn:bench","value":"` + ident + `"}],"gender":"female","birthDate":"1961-07-14"}`)
					req := createReq(w, body)
					req.Header.Set("If-None-Exist", "identifier="+url.QueryEscape("urn:bench|"+ident))
					resp, err := c.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != 201 && resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
		}
	}
}

// BenchmarkTransactionConditionalRefs100: loadgen.SyntheticTransaction(100) with every
// Observation's performer a conditional reference to one of 4 shared
// Practitioners (resolved once per distinct condition per Bundle), as the
// Synthea patient Bundles are; ns/op is per Bundle.
func BenchmarkTransactionConditionalRefs100(b *testing.B) {
	for _, be := range apptest.Backends {
		b.Run(string(be), func(b *testing.B) {
			w, c, _ := benchServer(b, be)
			for i := range 4 {
				w.Create(b, authz.RolePhysician, fmt.Sprintf(`{"resourceType":"Practitioner","identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"99999990%d"}]}`, i))
			}
			r := rand.New(rand.NewPCG(5, 6))
			bundles := make([][]byte, 8)
			for i := range bundles {
				s := string(loadgen.SyntheticTransaction(r, 100))
				for j := 0; strings.Contains(s, `"subject":{"reference":"urn:uuid:`); j++ {
					s = strings.Replace(s, `"subject":{"reference":"urn:uuid:`,
						fmt.Sprintf(`"performer":[{"reference":"Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|99999990%d"}],"subject":{"reference":"urn:uuid@`, j%4), 1)
				}
				bundles[i] = []byte(strings.ReplaceAll(s, "urn:uuid@", "urn:uuid:"))
			}
			b.ResetTimer()
			for i := range b.N {
				req, _ := http.NewRequest("POST", w.URL, bytes.NewReader(bundles[i%len(bundles)]))
				req.Header.Set("Authorization", "Bearer "+w.Tokens[authz.RolePhysician])
				req.Header.Set("Content-Type", "application/fhir+json")
				do(b, c, req, 200)
			}
		})
	}
}
