//go:build !race

package app_test

// allocScale: see hostile_race_test.go.
const allocScale = 1
