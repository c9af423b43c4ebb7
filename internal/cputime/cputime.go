// Package cputime reads the CPU time this process has used (user + system, every
// thread), for figures like verification overhead that compare work done, not wall time
// on a loaded machine.
package cputime

import (
	"syscall"
	"time"
)

// Process returns the CPU time the process has used so far (getrusage RUSAGE_SELF).
func Process() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Measure runs f and returns the CPU time the process used meanwhile.
func Measure(f func() error) (time.Duration, error) {
	t := Process()
	err := f()
	return Process() - t, err
}
