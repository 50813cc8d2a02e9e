package kvm

// Demand paging with userfaultfd: each slot with a missing-page handler
// gets its own userfaultfd registered in MISSING mode over the slot's host
// range, and a reader goroutine locked to its own OS thread that turns
// UFFD_EVENT_PAGEFAULT messages into handler calls and UFFDIO_COPY.
//
// Error design. A handler error must not leave the faulting thread (a vCPU
// inside KVM_RUN, or a host goroutine) blocked forever, and the access
// cannot be made to fail from here: the fault is answered with a zeroed
// page. The error is then reported three ways:
//   - it is kept for the vCPU whose access faulted (known from
//     UFFD_FEATURE_THREAD_ID; any vCPU when no vCPU's thread faulted), which
//     is kicked out of KVM_RUN; the run loop takes it with
//     takeUserfaultErr and returns it from that Run;
//   - MissingPageErr returns the VM's first handler error, sticky;
//   - removing the handler (SetMissingPageHandler(slot, nil)) returns the
//     first error of that registration.
// A panicking handler counts as a failing one.
//
// Lifetime. Removing a handler stops its reader and closes its fds before
// returning; VM.Close does the same for every handler (closeUserfaults),
// and a reader whose VM was closed without that also stops by itself
// within readerPollMillis.
//
// Host accesses. The registration is on host memory, so a host goroutine
// touching a missing page is served like a vCPU (handlers must not touch
// their own slot's missing pages: the reader would wait on itself). That
// goroutine blocks inside a page fault, not a syscall, and keeps its P;
// the handler is Go code and needs one too, so with GOMAXPROCS=1 the fault
// waits for the scheduler to preempt the toucher, which can take seconds
// (hostTouchNeedsTwoPs). vCPUs block inside KVM_RUN, a syscall, so guest
// faults are served at any GOMAXPROCS.

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// hostTouchNeedsTwoPs documents the GOMAXPROCS=1 limit above; tests
// and benchmarks that touch missing pages from the host check it.
const hostTouchNeedsTwoPs = 2

// readerPollMillis bounds how long a reader sleeps before it checks
// whether its VM was closed (a safety net: VM.Close stops readers at once).
const readerPollMillis = 50

// userfaults is one VM's missing-page handlers.
type userfaults struct {
	vm     *VM
	slots  map[uint32]*uffdSlot // guarded by vm.ufMu
	faults atomic.Uint64        // faults served while the VM has handlers
	errs   atomic.Uint64        // handler calls that failed, likewise

	errMu sync.Mutex
	first error         // the VM's first handler error (sticky)
	byTid map[int]error // per vCPU thread (or anyVCPU): the error a next Run reports
}

// userfaultsLocked returns vm's state, creating it when create is set.
// vm.ufMu must be held.
func userfaultsLocked(vm *VM, create bool) *userfaults {
	if vm.uf == nil && create {
		vm.uf = &userfaults{vm: vm, slots: map[uint32]*uffdSlot{}, byTid: map[int]error{}}
	}
	return vm.uf
}

// userfaultsOf returns vm's state, or nil when it never had a handler.
func userfaultsOf(vm *VM) *userfaults {
	vm.ufMu.Lock()
	defer vm.ufMu.Unlock()
	return vm.uf
}

// detach removes vm's registration of slot (only if it is want, when want
// is set) and returns it, or nil when there was none.
func detach(vm *VM, slot uint32, want *uffdSlot) *uffdSlot {
	vm.ufMu.Lock()
	defer vm.ufMu.Unlock()
	uf := vm.uf
	if uf == nil {
		return nil
	}
	s := uf.slots[slot]
	if s == nil || (want != nil && s != want) {
		return nil
	}
	delete(uf.slots, slot)
	uf.forgetIfDone()
	return s
}

// forgetIfDone drops uf from the map when it has no registration left, so
// the map never outlives a VM's handlers (the counters and errors go with
// it: removal returns the registration's error); vm.ufMu must be held.
func (uf *userfaults) forgetIfDone() {
	if len(uf.slots) == 0 && uf.vm.uf == uf {
		uf.vm.uf = nil
		uf.dropRunErrs()
	}
}

// dropRunErrs forgets the errors no Run will take any more.
func (uf *userfaults) dropRunErrs() {
	uf.errMu.Lock()
	defer uf.errMu.Unlock()
	uf.vm.ufPending.Add(-int32(len(uf.byTid)))
	clear(uf.byTid)
}

// uffdSlot is one slot's registration: its userfaultfd, the eventfd that
// stops the reader, and the bounce page handed to the handler.
type uffdSlot struct {
	uf   *userfaults
	slot uint32
	mem  *hv.Memory
	off  uint64 // the slot's offset in mem
	gpa  uint64 // the slot's GPA when registered
	base uint64 // host address of the slot's first byte
	size uint64
	h    hv.MissingPageHandler
	fd   int
	wake int
	page []byte // mmapped, so its address is stable for UFFDIO_COPY
	done chan struct{}

	errMu sync.Mutex
	err   error // the first handler error of this registration

	// stopMu orders a stop request against the reader closing its
	// descriptors, so a stop never writes to a closed (reused) fd number.
	stopMu sync.Mutex
	exited bool
}

// setMissingPageHandler is SetMissingPageHandler's implementation.
func (vm *VM) setMissingPageHandler(slot uint32, h hv.MissingPageHandler) error {
	if h == nil {
		return vm.removeMissingPageHandler(slot)
	}
	if err := vm.h.caps.Require(hv.CapUserfault); err != nil {
		return err
	}
	vm.mu.Lock()
	closed := vm.closed
	m, ok := vm.slots[slot]
	vm.mu.Unlock()
	if closed {
		return fmt.Errorf("missing-page handler for slot %d: VM closed: %w", slot, unix.EBADF)
	}
	if !ok {
		return fmt.Errorf("missing-page handler for slot %d: no such slot: %w", slot, unix.EINVAL)
	}
	if m.Memory == nil || m.Memory.Size() < m.Offset+m.Size || m.Size == 0 {
		return fmt.Errorf("missing-page handler for slot %d: its memory is closed: %w", slot, unix.EINVAL)
	}
	vm.ufMu.Lock()
	defer vm.ufMu.Unlock()
	uf := userfaultsLocked(vm, true)
	if _, dup := uf.slots[slot]; dup {
		return fmt.Errorf("missing-page handler for slot %d: the slot already has one (remove it with a nil handler first): %w", slot, unix.EBUSY)
	}
	s, err := newUffdSlot(uf, m, h)
	if err != nil {
		uf.forgetIfDone()
		return err
	}
	uf.slots[slot] = s
	go s.serve()
	return nil
}

// newUffdSlot opens and registers a userfaultfd for m. On error nothing
// stays open.
func newUffdSlot(uf *userfaults, m hv.Memslot, h hv.MissingPageHandler) (_ *uffdSlot, err error) {
	s := &uffdSlot{uf: uf, slot: m.Slot, mem: m.Memory, off: m.Offset, gpa: m.GPA, size: m.Size, h: h,
		fd: -1, wake: -1, done: make(chan struct{})}
	s.base = hostAddr(m.Memory.Bytes()) + m.Offset
	defer func() {
		if err != nil {
			s.closeFds()
		}
	}()
	var via string
	if s.fd, via, err = openUserfaultfd(); err != nil {
		return nil, fmt.Errorf("missing-page handler for slot %d: %w", m.Slot, err)
	}
	// The faulting thread's id lets a handler error reach the vCPU whose
	// access failed. UFFDIO_API is allowed once per fd, so a kernel that
	// refuses the feature costs a second fd.
	if _, _, err = uffdHandshake(s.fd, uffdFeatureThreadID); err == unix.EINVAL {
		unix.Close(s.fd)
		if s.fd, via, err = openUserfaultfd(); err != nil {
			return nil, fmt.Errorf("missing-page handler for slot %d: %w", m.Slot, err)
		}
		_, _, err = uffdHandshake(s.fd, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("missing-page handler for slot %d: UFFDIO_API on %s: %w", m.Slot, via, err)
	}
	ioctls, err := uffdRegister(s.fd, s.base, s.size, uffdRegisterModeMiss)
	if err != nil {
		return nil, registerError(m, err)
	}
	if ioctls&(1<<uffdioCopyBit) == 0 {
		return nil, hv.Unsupported(Name, hv.CapUserfault, "slot %d: UFFDIO_REGISTER on %s memory does not offer UFFDIO_COPY (ioctls %#x)", m.Slot, m.Memory.Backing(), ioctls)
	}
	if s.wake, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("missing-page handler for slot %d: eventfd: %w", m.Slot, err)
	}
	if s.page, err = unix.Mmap(-1, 0, hv.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return nil, fmt.Errorf("missing-page handler for slot %d: bounce page: %w", m.Slot, err)
	}
	return s, nil
}

// registerError explains why UFFDIO_REGISTER refused the slot's memory.
func registerError(m hv.Memslot, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("missing-page handler for slot %d: UFFDIO_REGISTER: the %s memory is already registered with another userfaultfd (another VM or slot on the same host pages): %w", m.Slot, m.Memory.Backing(), err)
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EPERM):
		return fmt.Errorf("missing-page handler for slot %d: UFFDIO_REGISTER MISSING refused on %s memory (%v): %w", m.Slot, m.Memory.Backing(), err,
			hv.Unsupported(Name, hv.CapUserfault, "MISSING mode on %s memory", m.Memory.Backing()))
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("missing-page handler for slot %d: UFFDIO_REGISTER: the slot's host range is not mapped: %w", m.Slot, err)
	}
	return fmt.Errorf("missing-page handler for slot %d: UFFDIO_REGISTER: %w", m.Slot, err)
}

// removeMissingPageHandler stops and frees slot's registration and returns
// the first error its handler returned.
func (vm *VM) removeMissingPageHandler(slot uint32) error {
	s := detach(vm, slot, nil)
	if s == nil {
		return fmt.Errorf("remove missing-page handler of slot %d: the slot has none: %w", slot, unix.ENOENT)
	}
	s.stop()
	return s.firstErr()
}

// closeUserfaults stops every reader of vm and closes their descriptors;
// VM.Close calls it once the vCPUs are gone.
func (vm *VM) closeUserfaults() {
	vm.ufMu.Lock()
	uf := vm.uf
	var all []*uffdSlot
	if uf != nil {
		for _, s := range uf.slots {
			all = append(all, s)
		}
		clear(uf.slots)
		uf.forgetIfDone()
	}
	vm.ufMu.Unlock()
	for _, s := range all {
		s.stop()
	}
}

// anyVCPU keys a handler error whose fault no vCPU took (a host
// goroutine's, or a thread the kernel did not name): the next Run of any
// vCPU reports it.
const anyVCPU = 0

// takeUserfaultErr returns, once, the handler error of a fault the vCPU
// on thread tid took, or else one no vCPU took; the run loop returns it
// from Run.
func (vm *VM) takeUserfaultErr(tid int) error {
	if vm.ufPending.Load() == 0 {
		return nil
	}
	uf := userfaultsOf(vm)
	if uf == nil {
		return nil
	}
	uf.errMu.Lock()
	defer uf.errMu.Unlock()
	for _, k := range []int{tid, anyVCPU} {
		if err, ok := uf.byTid[k]; ok {
			delete(uf.byTid, k)
			vm.ufPending.Add(-1)
			return err
		}
	}
	return nil
}

// MissingPageFaults is how many faults the VM's missing-page handlers
// served, every slot, since a handler was first set; it restarts from 0
// once the last handler is removed.
func (vm *VM) MissingPageFaults() uint64 {
	if uf := userfaultsOf(vm); uf != nil {
		return uf.faults.Load()
	}
	return 0
}

// userfaultStats are the demand-paging counters for VM.Stats; the names
// are the emu backend's, so suites read one name on both.
func (vm *VM) userfaultStats() hv.Stats {
	var faults, errs uint64
	if uf := userfaultsOf(vm); uf != nil {
		faults, errs = uf.faults.Load(), uf.errs.Load()
	}
	return hv.Stats{
		{Name: "missing_page_faults", Kind: "cumulative", Values: []uint64{faults}},
		{Name: "missing_page_errors", Kind: "cumulative", Values: []uint64{errs}},
	}
}

// MissingPageErr is the first error a missing-page handler of this VM
// returned, or nil. It stays set: a failing handler is a failed test.
func (vm *VM) MissingPageErr() error {
	uf := userfaultsOf(vm)
	if uf == nil {
		return nil
	}
	uf.errMu.Lock()
	defer uf.errMu.Unlock()
	return uf.first
}

// serve is the reader: it waits for faults or the stop eventfd, and
// notices a VM closed under it.
func (s *uffdSlot) serve() {
	// A thread of its own: the reader spends its life blocked in poll or
	// in the handler, and the faulting vCPU waits on it, so it must not
	// queue behind goroutines for a thread. It never unlocks, so the
	// thread ends with the reader instead of returning to the pool.
	runtime.LockOSThread()
	defer s.finish()
	fds := []unix.PollFd{{Fd: int32(s.fd), Events: unix.POLLIN}, {Fd: int32(s.wake), Events: unix.POLLIN}}
	msgs := make([]uffdMsg, 16)
	for {
		n, err := unix.Poll(fds, readerPollMillis)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			s.recordErr(0, fmt.Errorf("poll userfaultfd: %w", err))
			return
		}
		if n == 0 {
			if s.uf.vm.isClosed() {
				detach(s.uf.vm, s.slot, s)
				return
			}
			continue
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			s.recordErr(0, fmt.Errorf("userfaultfd poll events %#x", fds[0].Revents))
			return
		}
		for {
			k, err := readUffdMsgs(s.fd, msgs)
			if err == unix.EAGAIN || err == unix.EINTR {
				break
			}
			if err != nil {
				s.recordErr(0, fmt.Errorf("read userfaultfd: %w", err))
				return
			}
			for i := 0; i < k; i++ {
				if msgs[i].event == uffdEventPagefault {
					s.fault(&msgs[i])
				}
			}
			if k < len(msgs) {
				break
			}
		}
	}
}

// fault serves one missing page: the handler fills the bounce page, and
// UFFDIO_COPY installs it and wakes the faulting thread.
func (s *uffdSlot) fault(m *uffdMsg) {
	addr := m.address &^ (hv.PageSize - 1)
	if addr < s.base || addr-s.base >= s.size {
		// Not ours (cannot happen for a registered range): never leave
		// a thread waiting.
		_ = uffdWake(s.fd, addr, hv.PageSize)
		return
	}
	off := addr - s.base
	f := hv.Fault{Slot: s.slot, GPA: s.currentGPA() + off, Write: m.flags&uffdPagefaultFlagWrite != 0}
	clear(s.page)
	var victim *VCPU
	if err := s.call(f); err != nil {
		// Served as zeroes so the guest is not stuck; the error is kept
		// before the copy wakes the vCPU, so its next Run sees it.
		clear(s.page)
		victim = s.recordErr(int(m.ptid), fmt.Errorf("missing-page handler for slot %d gpa %#x: %w", s.slot, f.GPA, err))
	}
	s.uf.faults.Add(1)
	s.install(addr, f.GPA, int(m.ptid))
	if victim != nil {
		// Kicked only now: a signal while the vCPU still waited for the
		// page would make it fault again and the handler run twice.
		victim.kick()
	}
}

// install copies the bounce page to addr and wakes its waiters.
func (s *uffdSlot) install(addr, gpa uint64, tid int) {
	for {
		err := uffdCopy(s.fd, addr, s.page)
		switch {
		case err == nil, err == unix.EEXIST:
			// EEXIST: another thread's fault on the page was served
			// first; the page is there, ours is not needed.
			return
		case err == unix.EAGAIN:
			// The mm changed under the copy (a concurrent unmap or
			// remap): retry until the kernel settles.
			continue
		default:
			if v := s.recordErr(tid, fmt.Errorf("UFFDIO_COPY slot %d gpa %#x: %w", s.slot, gpa, err)); v != nil {
				defer v.kick()
			}
			_ = uffdWake(s.fd, addr, hv.PageSize)
			return
		}
	}
}

// call runs the handler; a panic becomes its error so a buggy handler
// cannot take the process down from a reader thread.
func (s *uffdSlot) call(f hv.Fault) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return s.h(f, s.page)
}

// currentGPA is the slot's GPA now: a moved slot reports faults at its
// new address.
func (s *uffdSlot) currentGPA() uint64 {
	if m, ok := s.uf.vm.slot(s.slot); ok && m.Memory == s.mem && m.Offset == s.off {
		return m.GPA
	}
	return s.gpa
}

// recordErr keeps err for this registration, for the VM, and for the
// next Run of the vCPU on thread tid (or, when the fault was not a known
// vCPU's, of any vCPU); it returns that vCPU, for the caller to kick once
// the fault is answered.
func (s *uffdSlot) recordErr(tid int, err error) *VCPU {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	uf := s.uf
	uf.errs.Add(1)
	var victim *VCPU
	if tid > 0 {
		for _, v := range uf.vm.vcpuList() {
			if v.tid == tid {
				victim = v
				break
			}
		}
	}
	key := anyVCPU
	if victim != nil {
		key = tid
	}
	uf.errMu.Lock()
	defer uf.errMu.Unlock()
	if uf.first == nil {
		uf.first = err
	}
	if _, ok := uf.byTid[key]; !ok {
		uf.byTid[key] = err
		s.uf.vm.ufPending.Add(1)
	}
	return victim
}

func (s *uffdSlot) firstErr() error {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// stop ends the reader and waits until it has closed its descriptors.
func (s *uffdSlot) stop() {
	s.stopMu.Lock()
	if !s.exited {
		var one [8]byte
		one[0] = 1
		_, _ = unix.Write(s.wake, one[:])
	}
	s.stopMu.Unlock()
	<-s.done
}

// finish runs when the reader ends, whatever the reason.
func (s *uffdSlot) finish() {
	s.stopMu.Lock()
	s.exited = true
	s.closeFds()
	s.stopMu.Unlock()
	// A fault served while the registration was being removed may have
	// left an error for a Run of a VM that is no longer tracked.
	s.uf.vm.ufMu.Lock()
	if s.uf.vm.uf != s.uf {
		s.uf.dropRunErrs()
	}
	s.uf.vm.ufMu.Unlock()
	close(s.done)
}

// closeFds closes the userfaultfd (which unregisters the range and wakes
// any thread still waiting on it: its fault is retried without us), the
// eventfd and the bounce page.
func (s *uffdSlot) closeFds() {
	if s.fd >= 0 {
		_ = unix.Close(s.fd)
		s.fd = -1
	}
	if s.wake >= 0 {
		_ = unix.Close(s.wake)
		s.wake = -1
	}
	if s.page != nil {
		_ = unix.Munmap(s.page)
		s.page = nil
	}
}

// isClosed reports whether Close was called on vm.
func (vm *VM) isClosed() bool {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.closed
}

// vcpuList is a snapshot of vm's vCPUs.
func (vm *VM) vcpuList() []*VCPU {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return append([]*VCPU(nil), vm.vcpus...)
}

// openUserfaultfd opens a userfaultfd that also sees faults the kernel
// takes on the process's behalf: KVM reaches guest memory through
// get_user_pages and uaccess from kernel mode, which a
// UFFD_USER_MODE_ONLY fd does not handle, so that flag is never an option
// here (measured with tools/refbench/uffd.c opened that way: the guest's
// read of a registered slot came back as a KVM_EXIT_MMIO, no fault
// reached the reader). userfaultfd(2) without
// it needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1;
// /dev/userfaultfd (Linux 6.1+) needs only access to the node.
func openUserfaultfd() (fd int, via string, err error) {
	flags := unix.O_CLOEXEC | unix.O_NONBLOCK
	r, _, e := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
	if e == 0 {
		return int(r), "userfaultfd(2)", nil
	}
	sysErr := error(e)
	dev, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, "", fmt.Errorf("userfaultfd(2): %v (needs CAP_SYS_PTRACE or vm.unprivileged_userfaultfd=1 for KVM's kernel-mode faults); open /dev/userfaultfd: %w", sysErr, err)
	}
	defer unix.Close(dev)
	nfd, err := ioctl(dev, userfaultfdIocNew, uintptr(flags))
	if err != nil {
		return -1, "", fmt.Errorf("userfaultfd(2): %v; /dev/userfaultfd USERFAULTFD_IOC_NEW: %w", sysErr, err)
	}
	return int(nfd), "/dev/userfaultfd", nil
}

// probeUserfaultfd says whether missing-page handlers work here: a
// userfaultfd that sees kernel-mode faults, MISSING registration of
// anonymous memory, and UFFDIO_COPY on it.
func probeUserfaultfd() hv.Support {
	fd, via, err := openUserfaultfd()
	if err != nil {
		return hv.Support{Reason: err.Error()}
	}
	defer unix.Close(fd)
	features, _, err := uffdHandshake(fd, 0)
	if err != nil {
		return hv.Support{Reason: fmt.Sprintf("UFFDIO_API on %s: %v", via, err)}
	}
	b, err := unix.Mmap(-1, 0, hv.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return hv.Support{Reason: fmt.Sprintf("mmap probe page: %v", err)}
	}
	defer unix.Munmap(b)
	ioctls, err := uffdRegister(fd, hostAddr(b), hv.PageSize, uffdRegisterModeMiss)
	if err != nil {
		return hv.Support{Reason: fmt.Sprintf("UFFDIO_REGISTER MISSING on anonymous memory via %s: %v", via, err)}
	}
	if ioctls&(1<<uffdioCopyBit) == 0 {
		return hv.Support{Reason: fmt.Sprintf("UFFDIO_REGISTER via %s offers no UFFDIO_COPY (ioctls %#x)", via, ioctls)}
	}
	return hv.Support{OK: true, Value: features, Reason: fmt.Sprintf("userfaultfd MISSING + UFFDIO_COPY via %s, features %#x", via, features)}
}
