package api

import (
	"encoding/json"
	"testing"
)

// FuzzEraseParameters: any JSON body is a reason or a 400, never a panic.
func FuzzEraseParameters(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Parameters","parameter":[{"name":"reason","valueString":"GDPR art. 17 request"}]}`,
		`{"resourceType":"Parameters","parameter":[{"name":"reason"}]}`,
		`{"resourceType":"Parameters","parameter":[1,"x",null]}`,
		`{"resourceType":"Parameters"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var doc map[string]any
		if json.Unmarshal([]byte(s), &doc) != nil {
			return
		}
		reason, err := parseEraseParameters(doc)
		if err == nil && (reason == "" || len(reason) > maxEraseReason) {
			t.Fatalf("accepted reason %q", reason)
		}
	})
}
