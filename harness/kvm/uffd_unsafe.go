package kvm

import (
	"syscall"
	"unsafe"
)

// uffdHandshake issues UFFDIO_API asking for features and returns what the
// kernel offers: the features it supports and the ioctls of the fd.
func uffdHandshake(fd int, features uint64) (gotFeatures, ioctls uint64, err error) {
	a := uffdioAPIArg{api: uffdAPI, features: features}
	if _, err := ioctlPtr(fd, uffdioAPI, unsafe.Pointer(&a)); err != nil {
		return 0, 0, err
	}
	return a.features, a.ioctls, nil
}

// uffdRegister registers [start, start+n) in mode and returns the ioctls
// the kernel allows on the range.
func uffdRegister(fd int, start, n, mode uint64) (uint64, error) {
	r := uffdioRegisterArg{rng: uffdioRange{start: start, len: n}, mode: mode}
	if _, err := ioctlPtr(fd, uffdioRegister, unsafe.Pointer(&r)); err != nil {
		return 0, err
	}
	return r.ioctls, nil
}

// uffdCopy installs src (n bytes of our own memory) at dst of the
// registered range and wakes the threads waiting on it.
func uffdCopy(fd int, dst uint64, src []byte) error {
	c := uffdioCopyArg{dst: dst, src: hostAddr(src), len: uint64(len(src))}
	// RawSyscall: the copy does not block for long, and skipping the
	// scheduler's syscall bookkeeping is a measurable part of a fault.
	_, _, e := syscall.RawSyscall(syscall.SYS_IOCTL, uintptr(fd), uffdioCopy, uintptr(unsafe.Pointer(&c)))
	// c holds src's address as an integer: keep the buffer alive.
	keepAlive(src)
	if e != 0 {
		return e
	}
	return nil
}

// uffdWake wakes the threads waiting on [start, start+n) without
// installing anything: their fault is retried.
func uffdWake(fd int, start, n uint64) error {
	r := uffdioRange{start: start, len: n}
	_, err := ioctlPtr(fd, uffdioWake, unsafe.Pointer(&r))
	return err
}

// readUffdMsgs reads as many pending messages as fit into msgs. A
// userfaultfd returns whole messages only.
func readUffdMsgs(fd int, msgs []uffdMsg) (int, error) {
	// RawSyscall: the fd is non-blocking.
	n, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)*uffdMsgSize))
	if e != 0 {
		return 0, e
	}
	return int(n) / uffdMsgSize, nil
}
