//go:build race

package fifopoll

// raceEnabled: the race detector randomizes the order in which the
// scheduler runs goroutines.
const raceEnabled = true
