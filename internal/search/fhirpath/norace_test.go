//go:build !race

package fhirpath

const raceEnabled = false
