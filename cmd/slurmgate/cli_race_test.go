//go:build race

package main

// raceFlags builds the binary under test with the race detector when the
// tests run with it, so that the CLI's own goroutines are checked too.
var raceFlags = []string{"-race"}
