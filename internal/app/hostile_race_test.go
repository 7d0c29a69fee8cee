//go:build race

package app_test

// allocScale widens the hostile suite's allocation bounds under the race
// detector, which allocates more for the same work (sync.Pool drops its
// items at random, and shadow state is kept per allocation): measured
// 1.2-1.4 times the plain build's bytes for the same refused requests.
const allocScale = 2
