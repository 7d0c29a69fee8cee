package main

import (
	"strings"
	"testing"

	"github.com/wardhealth/ward/internal/deptest"
)

// TestImports keeps the commands on the wiring: they reach the system
// through app (and read settings through config). loadgen drives `ward
// bench` over HTTP only.
func TestImports(t *testing.T) {
	const w = "github.com/wardhealth/ward/internal/"
	allowed := map[string]bool{"app": true, "config": true, "loadgen": true}
	deptest.Check(t, func(path string) string {
		switch {
		case strings.HasPrefix(path, w):
			if !allowed[strings.TrimPrefix(path, w)] {
				return "commands reach the system through app"
			}
		case strings.HasPrefix(path, "database/"),
			strings.HasPrefix(path, "github.com/jackc/"),
			strings.HasPrefix(path, "modernc.org/"),
			strings.HasPrefix(path, "github.com/mattn/"):
			return "commands open databases through app"
		}
		return ""
	})
}
