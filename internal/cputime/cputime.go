// Package cputime reads the CPU time this process has used (user + system, every
// thread), for figures like verification overhead that compare work done, not wall time
// on a loaded machine.
package cputime

import (
	"runtime"
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

// rusageThread is Linux's RUSAGE_THREAD: the calling thread only.
const rusageThread = 1

// MeasureThread runs f locked to one OS thread and returns that thread's CPU time
// meanwhile: work f does on its own goroutine, whatever else the process is doing
// (a demo runs a chain and daemons beside its verifier). Work f hands to other
// goroutines is not counted. Where the thread's usage cannot be read it falls back
// to the process's.
func MeasureThread(f func() error) (time.Duration, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	read := func() (time.Duration, bool) {
		var ru syscall.Rusage
		if err := syscall.Getrusage(rusageThread, &ru); err != nil {
			return 0, false
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
	}
	t0, ok := read()
	if !ok {
		return Measure(f)
	}
	err := f()
	t1, _ := read()
	return t1 - t0, err
}

// Children returns the CPU time of the process's children that have exited and been
// waited for (getrusage RUSAGE_CHILDREN): the workloads a provider ran as processes.
func Children() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
