//go:build race

package starlarkmod_test

// raceEnabled is true when tests run under the race detector (slow).
const raceEnabled = true
