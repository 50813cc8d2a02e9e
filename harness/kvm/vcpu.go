package kvm

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

var keepAlive = runtime.KeepAlive

// errClosed is returned by methods of a closed vCPU, and by a Run that
// Close stopped.
var errClosed = fmt.Errorf("vcpu closed: %w", hv.ErrVMClosed)

// VCPU is one KVM vCPU. A goroutine locked to its own OS thread creates the
// vCPU and issues every ioctl on it, because KVM wants vCPU ioctls from the
// creating thread; other goroutines hand it closures.
type VCPU struct {
	vm   *VM
	id   int
	fd   int
	run  []byte // the mmapped struct kvm_run
	ring []byte // the mmapped dirty ring, if enabled
	tid  int

	reqs     chan func()
	closing  chan struct{}
	done     chan struct{}
	onThread atomic.Bool
	closeMu  sync.Mutex
	closed   bool
	// stopping is set by Close before it kicks, so a Run in progress
	// returns instead of re-entering the guest.
	stopping atomic.Bool
	// ran is set at the first KVM_RUN (KVM refuses CPUID changes after it).
	ran bool

	arch archVCPU

	ringMu   sync.Mutex // guards ring and ringNext
	ringNext uint32
	stats    *statsFile

	// The watchdog: the context whose end kicks this vCPU stays armed
	// across Runs with that context, so a run loop pays for arming once;
	// a context without deadline gets the default watchdog timer.
	kickMu     sync.Mutex
	armedCtx   context.Context
	armedStop  func() bool
	watchdog   *time.Timer
	watchFired atomic.Bool

	// Exit values are reused: an Exit is valid until the next Run.
	ioExit    hv.IOExit
	mmioExit  hv.MMIOExit
	debugExit hv.DebugExit
	intErr    hv.InternalErrorExit
	failEntry hv.FailEntryExit
	msrExit   hv.MSRExit
	hcExit    hv.HypercallExit
	unknown   hv.UnknownExit
	lastMSR   bool
}

var _ hv.VCPU = (*VCPU)(nil)

// NewVCPU implements hv.VM.
func (vm *VM) NewVCPU(id int) (hv.VCPU, error) {
	v, err := vm.CreateVCPU(id)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return v, nil
}

// CreateVCPU is NewVCPU with the concrete type.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) { return vm.createVCPU(id, archVCPU{}) }

// createVCPU creates vCPU id with the arch state it starts from (on arm64,
// the features KVM_ARM_VCPU_INIT gets).
func (vm *VM) createVCPU(id int, arch archVCPU) (*VCPU, error) {
	v := &VCPU{vm: vm, id: id, fd: -1, reqs: make(chan func()), closing: make(chan struct{}), done: make(chan struct{}), arch: arch}
	ready := make(chan error, 1)
	go v.loop(ready)
	if err := <-ready; err != nil {
		<-v.done
		return nil, err
	}
	vm.mu.Lock()
	if vm.closed {
		vm.mu.Unlock()
		v.Close()
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, hv.ErrVMClosed)
	}
	vm.vcpus = append(vm.vcpus, v)
	vm.mu.Unlock()
	return v, nil
}

// loop is the vCPU's thread: create, serve requests, destroy.
func (v *VCPU) loop(ready chan<- error) {
	runtime.LockOSThread()
	defer close(v.done)
	v.tid = unix.Gettid()
	if err := v.create(); err != nil {
		v.destroy()
		// The thread is clean (no vCPU on it): give it back to the runtime.
		runtime.UnlockOSThread()
		ready <- err
		return
	}
	ready <- nil
	for {
		select {
		case f := <-v.reqs:
			v.onThread.Store(true)
			f()
			v.onThread.Store(false)
		case <-v.closing:
			v.destroy()
			runtime.UnlockOSThread()
			return
		}
	}
}

func (v *VCPU) create() error {
	fd, err := ioctl(v.vm.fd, kvmCreateVCPU, uintptr(v.id))
	if err != nil {
		return fmt.Errorf("KVM_CREATE_VCPU %d: %w", v.id, err)
	}
	v.fd = int(fd)
	unix.CloseOnExec(v.fd)
	v.run, err = unix.Mmap(v.fd, 0, v.vm.h.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("mmap kvm_run of vcpu %d: %w", v.id, err)
	}
	if err := v.archCreate(); err != nil {
		return fmt.Errorf("vcpu %d: %w", v.id, err)
	}
	if n := v.vm.cfg.DirtyRingBytes; n > 0 {
		v.ring, err = unix.Mmap(v.fd, kvmDirtyLogPageOffset*hv.PageSize, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("mmap dirty ring (%d bytes) of vcpu %d: %w", n, v.id, err)
		}
	}
	return nil
}

func (v *VCPU) destroy() {
	v.disarm()
	if v.watchdog != nil {
		v.watchdog.Stop()
	}
	// A kick racing with the unmap below must not touch kvm_run.
	v.kickMu.Lock()
	defer v.kickMu.Unlock()
	if v.stats != nil {
		v.stats.close()
	}
	v.ringMu.Lock()
	if v.ring != nil {
		_ = unix.Munmap(v.ring)
		v.ring = nil
	}
	v.ringMu.Unlock()
	if v.run != nil {
		_ = unix.Munmap(v.run)
		v.run = nil
	}
	if v.fd >= 0 {
		_ = unix.Close(v.fd)
		v.fd = -1
	}
}

// exec runs f on the vCPU thread and waits for it.
func (v *VCPU) exec(f func() error) error {
	// onThread is set while the vCPU thread runs a request, but another
	// goroutine can see it set too (just after its own request returned):
	// the thread id decides.
	if v.onThread.Load() && unix.Gettid() == v.tid {
		return f()
	}
	errc := make(chan error, 1)
	select {
	case v.reqs <- func() { errc <- f() }:
		return <-errc
	case <-v.done:
		return fmt.Errorf("vcpu %d: %w", v.id, errClosed)
	case <-v.closing:
		return fmt.Errorf("vcpu %d: %w", v.id, errClosed)
	}
}

// ID implements hv.VCPU.
func (v *VCPU) ID() int { return v.id }

// Fd is the vCPU descriptor (for KVM-specific tests).
func (v *VCPU) Fd() int { return v.fd }

// Do implements hv.VCPU.
func (v *VCPU) Do(fn func() error) error { return v.exec(fn) }

// Close implements hv.VCPU. A running guest is kicked out of KVM_RUN
// (its Run returns an error wrapping hv.ErrVMClosed); Close returns once
// the vCPU's thread has destroyed it.
func (v *VCPU) Close() error {
	v.startClose()
	<-v.done
	return nil
}

// startClose stops the vCPU without waiting: VM.Close kicks every vCPU
// first and then waits for all, so n running vCPUs stop in parallel.
func (v *VCPU) startClose() {
	v.closeMu.Lock()
	defer v.closeMu.Unlock()
	if v.closed {
		return
	}
	v.closed = true
	v.stopping.Store(true)
	close(v.closing)
	v.kick()
}

// kick stops a running KVM_RUN: immediate_exit makes the next or current
// entry return EINTR, and the signal interrupts a guest that is running.
// SIGURG is the Go runtime's own preemption signal, so an extra one is
// harmless to the runtime.
func (v *VCPU) kick() {
	v.wake() // a vCPU halted in userspace waits on a channel, not in KVM_RUN
	v.kickMu.Lock()
	defer v.kickMu.Unlock()
	if v.run == nil {
		return
	}
	setImmediateExit(v.run, 1)
	_ = unix.Tgkill(unix.Getpid(), v.tid, syscall.SIGURG)
}

// arm makes the end of ctx stop this vCPU, once per context.
func (v *VCPU) arm(ctx context.Context) {
	if ctx == v.armedCtx {
		return
	}
	v.disarm()
	v.armedCtx = ctx
	if ctx.Done() != nil {
		v.armedStop = context.AfterFunc(ctx, v.kick)
	}
}

func (v *VCPU) disarm() {
	if v.armedStop != nil {
		v.armedStop()
	}
	v.armedCtx, v.armedStop = nil, nil
}

// Run implements hv.VCPU.
func (v *VCPU) Run(ctx context.Context) (hv.Exit, error) {
	var exit hv.Exit
	var rerr error
	err := v.exec(func() error {
		exit, rerr = v.runOnThread(ctx)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return exit, rerr
}

func (v *VCPU) runOnThread(ctx context.Context) (hv.Exit, error) {
	v.arm(ctx)
	if _, ok := ctx.Deadline(); !ok {
		// Every KVM_RUN is bounded: some guest instructions make KVM_RUN
		// never return on some hosts.
		if v.watchdog == nil {
			v.watchdog = time.AfterFunc(DefaultWatchdog, func() {
				v.watchFired.Store(true)
				v.kick()
			})
		} else {
			v.watchdog.Reset(DefaultWatchdog)
		}
		defer v.watchdog.Stop()
	}
	for {
		if v.stopping.Load() {
			return nil, fmt.Errorf("vcpu %d: run stopped: %w", v.id, errClosed)
		}
		if err := ctx.Err(); err != nil {
			setImmediateExit(v.run, 0)
			return nil, fmt.Errorf("vcpu %d: run stopped: %w", v.id, err)
		}
		if v.watchFired.Swap(false) {
			setImmediateExit(v.run, 0)
			return nil, fmt.Errorf("vcpu %d: KVM_RUN did not return within the %v watchdog (no deadline on the context)", v.id, DefaultWatchdog)
		}
		// A missing-page handler failed on a fault of this vCPU (the
		// reader kicked it): the access got a zero page, the Run fails.
		if err := v.vm.takeUserfaultErr(v.tid); err != nil {
			setImmediateExit(v.run, 0)
			return nil, fmt.Errorf("vcpu %d: %w", v.id, err)
		}
		v.completeMSR()
		if err := v.beforeEntry(); err != nil {
			return nil, fmt.Errorf("vcpu %d: %w", v.id, err)
		}
		v.ran = true
		switch e := runIoctl(v.fd); e {
		case 0:
			v.afterExit()
		case syscall.EINTR:
			// A signal (runtime preemption, profiler, our kick). Stop only
			// if the context ended; a stale kick from an earlier context is
			// cleared and the guest re-entered.
			if ctx.Err() == nil && !v.watchFired.Load() && !v.stopping.Load() {
				setImmediateExit(v.run, 0)
			}
			continue
		case syscall.EAGAIN:
			continue
		default:
			return nil, fmt.Errorf("KVM_RUN vcpu %d: %w", v.id, e)
		}
		exit := v.decodeExit()
		if exit == nil {
			continue // KVM_EXIT_INTR and friends: re-enter
		}
		// Exits the backend serves itself (the userspace APIC, a halt
		// that waits for an interrupt) never reach the bus or the caller.
		if handled, err := v.archExit(ctx, exit); handled || err != nil {
			if err != nil {
				return exit, fmt.Errorf("vcpu %d: %w", v.id, err)
			}
			continue
		}
		if !v.vm.bus.Empty() {
			handled, err := v.vm.bus.Dispatch(v.id, exit)
			if err != nil {
				return exit, fmt.Errorf("vcpu %d: %w", v.id, err)
			}
			if handled {
				continue
			}
		}
		return exit, nil
	}
}

// HarvestDirtyRing implements hv.VCPU.
func (v *VCPU) HarvestDirtyRing(fn func(slot uint32, offset uint64)) (int, error) {
	if v.vm.cfg.DirtyRingBytes == 0 {
		return 0, fmt.Errorf("vcpu %d: harvest: dirty ring not enabled on this VM: %w", v.id, unix.EINVAL)
	}
	// The ring is memory shared with KVM, not a vCPU ioctl: it can be
	// harvested from any goroutine, also while the vCPU runs, as the
	// kernel's dirty_log_test does. ringMu orders harvests and the unmap.
	v.ringMu.Lock()
	defer v.ringMu.Unlock()
	if v.ring == nil {
		return 0, fmt.Errorf("vcpu %d: %w", v.id, errClosed)
	}
	return v.harvest(fn), nil
}

// Stats implements hv.VCPU.
func (v *VCPU) Stats() (hv.Stats, error) {
	var st hv.Stats
	err := v.exec(func() error {
		if v.stats == nil {
			sf, err := openStats(v.fd)
			if err != nil {
				return fmt.Errorf("vcpu %d stats: %w", v.id, err)
			}
			v.stats = sf
		}
		var err error
		st, err = v.stats.read()
		return err
	})
	return st, err
}
