//go:build race

package records

// raceEnabled: the race detector's instrumentation allocates on its own,
// so tests that count allocations do not apply.
const raceEnabled = true
