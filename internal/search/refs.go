package search

import (
	"strings"

	"github.com/wardhealth/ward/internal/search/fhirpath"
	"github.com/wardhealth/ward/internal/search/params"
	"github.com/wardhealth/ward/internal/store"
)

// References evaluates a reference parameter on a resource and returns the
// local resources it points at (Type/id, or an absolute URL ending in
// Type/id), for _include.
func References(resource map[string]any, p *params.Param) ([]store.Ref, error) {
	rt, _ := resource["resourceType"].(string)
	x, err := ExtractorFor(rt)
	if err != nil {
		return nil, err
	}
	var out []store.Ref
	for i := range x.params {
		c := &x.params[i]
		if c.Param != p || c.Expr == nil {
			continue
		}
		vals, err := c.Expr.Eval(resource)
		if err != nil {
			return nil, err
		}
		for _, v := range vals {
			if rf, ok := localRef(v); ok {
				out = append(out, rf)
			}
		}
	}
	return out, nil
}

func localRef(v fhirpath.Value) (store.Ref, bool) {
	m, ok := v.Node.(map[string]any)
	if !ok {
		return store.Ref{}, false
	}
	ref, _ := m["reference"].(string)
	if ref == "" || strings.HasPrefix(ref, "#") || strings.Contains(ref, "?") {
		return store.Ref{}, false
	}
	if i := strings.Index(ref, "/_history/"); i >= 0 {
		ref = ref[:i]
	}
	parts := strings.Split(ref, "/")
	n := len(parts)
	if n < 2 || params.ForType(parts[n-2]) == nil || parts[n-1] == "" {
		return store.Ref{}, false
	}
	return store.Ref{Type: parts[n-2], ID: parts[n-1]}, true
}
