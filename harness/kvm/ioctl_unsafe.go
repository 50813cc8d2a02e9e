package kvm

import (
	"syscall"
	"unsafe"
)

// ioctl issues an ioctl whose argument is a plain integer. EINTR is
// retried: KVM's non-run ioctls are restartable (the selftests do the same).
func ioctl(fd int, req uintptr, arg uintptr) (uintptr, error) {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, arg)
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// ioctlPtr issues an ioctl whose argument points at a buffer.
func ioctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	for {
		r, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// rawIoctlPtr is ioctlPtr without telling the Go scheduler
// (syscall.RawSyscall: the thread keeps its P). Only for ioctls that
// cannot wait on anything this process must run: see rawRegionIoctl.
func rawIoctlPtr(fd int, req uintptr, p unsafe.Pointer) (uintptr, error) {
	for {
		r, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, uintptr(fd), req, uintptr(p))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return r, e
		}
		return r, nil
	}
}

// runIoctl issues KVM_RUN once; EINTR is returned to the run loop, which
// decides whether it was a cancellation.
func runIoctl(fd int) syscall.Errno {
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), kvmRun, 0)
	return e
}
