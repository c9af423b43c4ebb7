//go:build race

package tenant

// raceEnabled: the race detector slows yaml.v3 down some forty times, so timings
// are not asserted under it.
const raceEnabled = true
