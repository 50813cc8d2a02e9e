package dirtylog

import (
	"runtime"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Signals and KVM_RESET_DIRTY_RINGS. KVM (virt/kvm/dirty_ring.c, since
// 6.16) stops a dirty-ring reset when the calling thread has a signal
// pending and returns the count so far as success. Measured on the pvm
// hosts (kernel 6.18): the entries counted in such a return include the
// last run of up to 64 neighbouring pages, which KVM batches and never
// write-protects when it bails, so later writes to them are not logged.
// A Go process is signalled all the time (SIGURG preempts goroutines), so
// specs that are not about this block SIGURG around the reset, and one
// spec provokes it (interruptedResetSpec).

// sigurg is SIGURG in a signal set.
func sigurg() *unix.Sigset_t {
	var set unix.Sigset_t
	n := uint(unix.SIGURG) - 1
	set.Val[n/64] |= 1 << (n % 64)
	return &set
}

// withoutSIGURG runs fn on the calling goroutine's thread with SIGURG
// blocked, so a backend that makes a system call on the calling thread
// (the kvm backend's ResetDirtyRings does) is not interrupted by Go's
// preemption signal. The signal stays pending and is taken afterwards.
func withoutSIGURG(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var old unix.Sigset_t
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, sigurg(), &old); err != nil {
		fn()
		return
	}
	defer unix.PthreadSigmask(unix.SIG_SETMASK, &old, nil)
	fn()
}

// withSIGURGStorm runs fn on the calling goroutine's locked thread while
// another goroutine sends that thread SIGURG as fast as it can (Go's
// runtime takes SIGURG as a preemption request and carries on). fn starts
// once the signals flow.
func withSIGURGStorm(fn func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid, tid := unix.Getpid(), unix.Gettid()
	var stop atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
			_ = unix.Tgkill(pid, tid, unix.SIGURG)
			sent.Add(1)
		}
	}()
	defer func() {
		stop.Store(true)
		<-done
	}()
	for start := time.Now(); sent.Load() < 3 && time.Since(start) < time.Second; {
		runtime.Gosched()
	}
	fn()
}
