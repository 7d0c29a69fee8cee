package config

import (
	"flag"
	"strings"
	"testing"
	"time"
)

func TestLimitSettings(t *testing.T) {
	def := Default().Limits
	if def != (Limits{ArrayItems: 10000, Elements: 1000000, BundleEntries: 10000, PatchOps: 1000, PatchElements: 100000,
		SearchIncludes: 1000, SearchParams: 100, SearchValues: 100, RequestTimeout: 60 * time.Second}) {
		t.Fatalf("defaults %+v", def)
	}
	cases := []struct {
		env     string
		wantErr bool
		check   func(Limits) bool
	}{
		{"WARD_RESOURCE_MAX_ARRAY_ITEMS=50", false, func(l Limits) bool { return l.ArrayItems == 50 }},
		{"WARD_RESOURCE_MAX_ARRAY_ITEMS=9", true, nil},
		{"WARD_RESOURCE_MAX_ELEMENTS=5000", false, func(l Limits) bool { return l.Elements == 5000 }},
		{"WARD_RESOURCE_MAX_ELEMENTS=lots", true, nil},
		{"WARD_BUNDLE_MAX_ENTRIES=1", false, func(l Limits) bool { return l.BundleEntries == 1 }},
		{"WARD_BUNDLE_MAX_ENTRIES=0", true, nil},
		{"WARD_PATCH_MAX_OPS=5", false, func(l Limits) bool { return l.PatchOps == 5 }},
		{"WARD_PATCH_MAX_OPS=100001", true, nil},
		{"WARD_PATCH_MAX_ELEMENTS=200", false, func(l Limits) bool { return l.PatchElements == 200 }},
		{"WARD_PATCH_MAX_ELEMENTS=-1", true, nil},
		{"WARD_SEARCH_MAX_INCLUDES=3", false, func(l Limits) bool { return l.SearchIncludes == 3 }},
		{"WARD_SEARCH_MAX_INCLUDES=0", true, nil},
		{"WARD_SEARCH_MAX_PARAMS=20", false, func(l Limits) bool { return l.SearchParams == 20 }},
		{"WARD_SEARCH_MAX_PARAMS=0", true, nil},
		{"WARD_SEARCH_MAX_VALUES=7", false, func(l Limits) bool { return l.SearchValues == 7 }},
		{"WARD_SEARCH_MAX_VALUES=1.5", true, nil},
		{"WARD_REQUEST_TIMEOUT=5m", false, func(l Limits) bool { return l.RequestTimeout == 5*time.Minute }},
		{"WARD_REQUEST_TIMEOUT=10ms", true, nil},
		{"WARD_REQUEST_TIMEOUT=2h", true, nil},
	}
	for _, c := range cases {
		t.Run(c.env, func(t *testing.T) {
			cfg := Default()
			err := cfg.FromEnv([]string{c.env})
			name, _, _ := strings.Cut(c.env, "=")
			if c.wantErr {
				if err == nil || !strings.Contains(err.Error(), name) {
					t.Fatalf("got %v, want an error naming %s", err, name)
				}
				return
			}
			if err != nil || !c.check(cfg.Limits) {
				t.Fatalf("got %v, %+v", err, cfg.Limits)
			}
		})
	}
}

// Every limit has a flag, registered by LimitFlags' names.
func TestLimitFlags(t *testing.T) {
	cfg := Default()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	cfg.Flags(fs, LimitFlags()...)
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n != len(LimitFlags()) {
		t.Fatalf("%d flags for %d names", n, len(LimitFlags()))
	}
	if err := fs.Parse([]string{"--bundle-max-entries", "12", "--request-timeout", "90s"}); err != nil {
		t.Fatal(err)
	}
	if cfg.Limits.BundleEntries != 12 || cfg.Limits.RequestTimeout != 90*time.Second {
		t.Fatalf("%+v", cfg.Limits)
	}
}
