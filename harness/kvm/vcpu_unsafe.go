package kvm

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// setImmediateExit stores kvm_run.immediate_exit. The kick writes it from
// another thread while the vCPU thread may write request_interrupt_window,
// the byte before it, so both go through setRunByte.
func setImmediateExit(run []byte, v uint32) { setRunByte(run, runImmediateExit, uint8(v)) }

// setRunByte replaces byte off (0..3) of kvm_run's first word atomically,
// leaving its neighbours as they are (little-endian byte order, as on
// every architecture Linux KVM runs on here).
func setRunByte(run []byte, off int, b uint8) {
	p := (*uint32)(unsafe.Pointer(&run[0]))
	shift := uint(off) * 8
	for {
		old := atomic.LoadUint32(p)
		nv := old&^(0xff<<shift) | uint32(b)<<shift
		if old == nv || atomic.CompareAndSwapUint32(p, old, nv) {
			return
		}
	}
}

func (v *VCPU) u8(off int) uint8   { return v.run[off] }
func (v *VCPU) u16(off int) uint16 { return *(*uint16)(unsafe.Pointer(&v.run[off])) }
func (v *VCPU) u32(off int) uint32 { return *(*uint32)(unsafe.Pointer(&v.run[off])) }
func (v *VCPU) u64(off int) uint64 { return *(*uint64)(unsafe.Pointer(&v.run[off])) }

// decodeExit turns kvm_run into a typed exit; nil means "re-enter".
func (v *VCPU) decodeExit() hv.Exit {
	const u = runUnion
	reason := v.u32(runExitReason)
	switch reason {
	case exitIO:
		e := &v.ioExit
		e.In = v.u8(u) == exitIOIn
		e.Size = int(v.u8(u + 1))
		e.Port = v.u16(u + 2)
		e.Count = int(v.u32(u + 4))
		// Bounds in unsigned 64-bit arithmetic: size < 256 and count <
		// 2^32, so n cannot wrap, and off is compared before it is added.
		off, n, size := v.u64(u+8), uint64(e.Size)*uint64(e.Count), uint64(len(v.run))
		if off > size || n > size-off {
			v.intErr = hv.InternalErrorExit{Suberror: 0xffff, Data: []uint64{off, n},
				Detail: fmt.Sprintf("KVM_EXIT_IO data [%#x, +%#x) outside the %#x-byte kvm_run mapping", off, n, size)}
			return &v.intErr
		}
		e.Data = v.run[off : off+n : off+n]
		return e
	case exitMMIO:
		e := &v.mmioExit
		e.GPA = v.u64(u)
		e.Len = int(v.u32(u + 16))
		if e.Len > 8 {
			e.Len = 8
		}
		e.Write = v.u8(u+20) != 0
		e.Data = v.run[u+8 : u+8+e.Len : u+8+e.Len]
		return e
	case exitHLT:
		return &hv.HaltExit{}
	case exitShutdown:
		return &hv.ShutdownExit{}
	case exitDirtyRingFull:
		return &hv.DirtyRingFullExit{}
	case exitDebug:
		v.decodeDebug()
		return &v.debugExit
	case exitFailEntry:
		v.failEntry = hv.FailEntryExit{Reason: v.u64(u), CPU: v.u32(u + 8)}
		return &v.failEntry
	case exitInternalError:
		n := int(v.u32(u + 4))
		if n > 16 {
			n = 16
		}
		data := make([]uint64, n)
		for i := range data {
			data[i] = v.u64(u + 8 + 8*i)
		}
		sub := v.u32(u)
		v.intErr = hv.InternalErrorExit{Suberror: sub, Data: data, Detail: internalErrorDetail(sub, data)}
		return &v.intErr
	case exitX86RDMSR, exitX86WRMSR:
		v.msrExit = hv.MSRExit{Write: reason == exitX86WRMSR, Reason: v.u32(u + 8), Index: v.u32(u + 12), Data: v.u64(u + 16)}
		v.lastMSR = true
		return &v.msrExit
	case exitSystemEvent:
		// ndata counts data[] since 5.18; before, flags sat where data[0]
		// is, and ndata was padding (0): report flags alone then.
		n := int(v.u32(u + 4))
		if n == 0 {
			n = 1
		}
		if n > 16 {
			n = 16
		}
		data := make([]uint64, n)
		for i := range data {
			data[i] = v.u64(u + 8 + 8*i)
		}
		return &hv.SystemEventExit{Type: v.u32(u), Data: data}
	case exitHypercall:
		e := &v.hcExit
		e.Nr = v.u64(u)
		for i := range e.Args {
			e.Args[i] = v.u64(u + 8 + 8*i)
		}
		return e
	case exitIntr, exitIRQWindowOpen, exitSetTPR:
		// Re-enter: the run loop injects what the window was opened for;
		// a CR8 write without an in-kernel APIC (KVM_EXIT_SET_TPR) was
		// taken into the userspace APIC by afterExit.
		return nil
	}
	v.unknown = hv.UnknownExit{Reason: reason}
	return &v.unknown
}

// completeMSR hands the host's answer to an MSR exit back to KVM.
func (v *VCPU) completeMSR() {
	if !v.lastMSR {
		return
	}
	v.lastMSR = false
	const u = runUnion
	if v.msrExit.Error {
		v.run[u] = 1
	} else {
		v.run[u] = 0
	}
	*(*uint64)(unsafe.Pointer(&v.run[u+16])) = v.msrExit.Data
}

func (v *VCPU) ioctlBuf(req uintptr, name string, p unsafe.Pointer) error {
	if _, err := ioctlPtr(v.fd, req, p); err != nil {
		return fmt.Errorf("%s vcpu %d: %w", name, v.id, err)
	}
	return nil
}

// harvest collects dirty entries in ring order. The flags word is read
// with acquire ordering (a plain load on amd64, atomic for the compiler)
// so the entry's slot and offset are read after KVM published them.
// Marking an entry RESET needs release ordering only with respect to the
// KVM_RESET_DIRTY_RINGS ioctl that consumes it, and a system call orders
// every store before it: a plain store is enough, and it avoids a locked
// exchange per entry (the ring is KVM's size, a power of two).
func (v *VCPU) harvest(fn func(slot uint32, offset uint64)) int {
	entries := len(v.ring) / int(unsafe.Sizeof(dirtyGFN{}))
	if entries == 0 {
		return 0
	}
	gfns := unsafe.Slice((*dirtyGFN)(unsafe.Pointer(&v.ring[0])), entries)
	mask := uint32(entries - 1)
	n := 0
	for {
		g := &gfns[v.ringNext&mask]
		if atomic.LoadUint32(&g.flags)&dirtyGFNDirty == 0 {
			return n
		}
		fn(g.slot, g.offset)
		g.flags = dirtyGFNReset
		v.ringNext++
		n++
	}
}
