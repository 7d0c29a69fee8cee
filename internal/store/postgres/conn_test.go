package postgres

import "testing"

// Ward's sessions reuse generic plans unless the URL says otherwise (see
// connConfig).
func TestGenericPlansByDefault(t *testing.T) {
	for url, want := range map[string]string{
		"postgres://ward@db.example/ward":                                   "force_generic_plan",
		"postgres://ward@db.example/ward?plan_cache_mode=force_custom_plan": "force_custom_plan",
		"postgres://ward@db.example/ward?plan_cache_mode=auto":              "auto",
	} {
		cfg, err := connConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.RuntimeParams["plan_cache_mode"]; got != want {
			t.Errorf("%s: plan_cache_mode %q, want %q", url, got, want)
		}
	}
}
