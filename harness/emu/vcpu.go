package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// errStopped is returned inside the run loop when the context ended.
var errStopped = errors.New("run stopped")

// errClosed is returned by methods of a closed vCPU.
var errClosed = fmt.Errorf("vcpu closed: %w", hv.ErrVMClosed)

// VCPU is one emulated vCPU. Like the kvm backend its methods must not be
// called concurrently with each other; Run is stopped through its context.
type VCPU struct {
	vm     *VM
	id     int
	c      *cpu
	ring   *dirtyRing
	closed atomic.Bool
}

var _ hv.VCPU = (*VCPU)(nil)

// NewVCPU implements hv.VM.
func (vm *VM) NewVCPU(id int) (hv.VCPU, error) {
	v, err := vm.CreateVCPU(id)
	if err != nil {
		return nil, err
	}
	return v, nil
}

// CreateVCPU is NewVCPU with the concrete type. Ids follow KVM's rules:
// below MaxVCPUs and unique (EINVAL / EEXIST).
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	if id < 0 || id >= MaxVCPUs {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, unix.EINVAL)
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return nil, fmt.Errorf("KVM_CREATE_VCPU %d: VM closed: %w", id, unix.EBADF)
	}
	for _, o := range vm.vcpus {
		if o.id == id {
			return nil, fmt.Errorf("KVM_CREATE_VCPU %d: %w", id, unix.EEXIST)
		}
	}
	v := &VCPU{vm: vm, id: id}
	v.c = newCPU(vm, v)
	if vm.cfg.DirtyRingBytes != 0 {
		v.ring = newDirtyRing(vm.cfg.DirtyRingBytes)
	}
	vm.vcpus = append(vm.vcpus, v)
	list := append([]*VCPU(nil), vm.vcpus...)
	vm.running.Store(&list)
	return v, nil
}

// reset puts the CPU in KVM's power-on state (real mode at 0xfffffff0).
// The emulator only runs 64-bit code, so a guest must set long mode up
// through SetSregs before Run, as every kvmspec guest does.
func (c *cpu) reset() {
	c.regs = [32]uint64{}
	c.regs[2] = 0x600
	c.rip = 0xfff0
	c.rflags = hv.FlagsFixed
	c.lz = lazyFlags{}
	data := hv.Segment{Limit: 0xffff, Type: 3, Present: 1, S: 1}
	c.sr = hv.Sregs{
		CS: hv.Segment{Base: 0xffff0000, Limit: 0xffff, Selector: 0xf000, Type: 11, Present: 1, S: 1},
		DS: data, ES: data, FS: data, GS: data, SS: data,
		TR:  hv.Segment{Limit: 0xffff, Type: 11, Present: 1},
		LDT: hv.Segment{Limit: 0xffff, Type: 2, Present: 1},
		GDT: hv.DTable{Limit: 0xffff}, IDT: hv.DTable{Limit: 0xffff},
		CR0:      0x60000010,
		APICBase: apicDefault | apicEnable,
	}
	if c.v.id == 0 {
		c.sr.APICBase |= apicBaseBSP
	}
	c.msr = msrState{pat: 0x0007040600070406, miscEnable: 1}
	c.dr6, c.dr7 = dr6Fixed, dr7Fixed
	c.apic.Reset(uint32(c.v.id))
	c.cpuid = defaultCPUID(c.v.id)
	c.clk.timer = apicTimer{}
	c.pmuConfigure()
	c.setCPL(0)
}

// ID implements hv.VCPU.
func (v *VCPU) ID() int { return v.id }

// Do implements hv.VCPU; the emulator has no thread affinity.
func (v *VCPU) Do(fn func() error) error {
	if v.closed.Load() {
		return fmt.Errorf("vcpu %d: %w", v.id, errClosed)
	}
	return fn()
}

func (v *VCPU) check() error {
	if v.closed.Load() {
		return fmt.Errorf("vcpu %d: %w", v.id, errClosed)
	}
	return nil
}

// Regs implements hv.VCPU.
func (v *VCPU) Regs() (hv.Regs, error) {
	var r hv.Regs
	if err := v.check(); err != nil {
		return r, err
	}
	c := v.c
	for i := 0; i < 16; i++ {
		r.SetGPR(i, c.regs[i])
	}
	r.RIP = c.rip
	r.RFLAGS = c.getFlags() | hv.FlagsFixed
	return r, nil
}

// SetRegs implements hv.VCPU.
func (v *VCPU) SetRegs(r *hv.Regs) error {
	if err := v.check(); err != nil {
		return err
	}
	c := v.c
	for i := 0; i < 16; i++ {
		c.regs[i] = r.GPR(i)
	}
	c.rip = r.RIP
	c.lz.op = lzNone
	c.rflags = r.RFLAGS | hv.FlagsFixed
	c.shutdown = false
	c.pendTrap = false // a held-back single-step trap belonged to the old state
	c.updateSlow()
	return nil
}

// Sregs implements hv.VCPU.
func (v *VCPU) Sregs() (hv.Sregs, error) {
	if err := v.check(); err != nil {
		return hv.Sregs{}, err
	}
	s := v.c.sr
	s.CR8 = uint64(v.c.apic.TPR() >> 4)
	return s, nil
}

// SetSregs implements hv.VCPU. CPL comes from CS.DPL; EFER.LMA is taken
// as given (KVM checks it against CR0.PG and EFER.LME; so does Run).
func (v *VCPU) SetSregs(s *hv.Sregs) error {
	if err := v.check(); err != nil {
		return err
	}
	c := v.c
	c.sr = *s
	c.sr.CR0 |= cr0Fixed1
	c.apic.SetTPR(uint32(s.CR8 << 4))
	c.setCPL(s.CS.DPL)
	c.updateWatch() // CR4.DE decides what DR7's RW=10 means; flushes the TLBs
	c.shutdown = false
	c.updateSlow()
	return nil
}

// GetMSR implements hv.VCPU.
func (v *VCPU) GetMSR(index uint32) (uint64, error) {
	if err := v.check(); err != nil {
		return 0, err
	}
	val, ok := v.c.readMSR(index)
	if !ok {
		return 0, fmt.Errorf("KVM_GET_MSRS %#x vcpu %d: MSR not accepted", index, v.id)
	}
	return val, nil
}

// SetMSR implements hv.VCPU.
func (v *VCPU) SetMSR(index uint32, value uint64) error {
	if err := v.check(); err != nil {
		return err
	}
	if known, valid := v.c.writeMSR(index, value, true); !known || !valid {
		return fmt.Errorf("KVM_SET_MSRS %#x vcpu %d: MSR not accepted", index, v.id)
	}
	return nil
}

// DebugRegs implements hv.VCPU.
func (v *VCPU) DebugRegs() (hv.DebugRegs, error) {
	if err := v.check(); err != nil {
		return hv.DebugRegs{}, err
	}
	return hv.DebugRegs{DB: v.c.dr, DR6: v.c.dr6 | dr6Fixed, DR7: v.c.dr7 | dr7Fixed}, nil
}

// SetDebugRegs implements hv.VCPU.
func (v *VCPU) SetDebugRegs(d *hv.DebugRegs) error {
	if err := v.check(); err != nil {
		return err
	}
	if d.DR6>>32 != 0 || d.DR7>>32 != 0 {
		return fmt.Errorf("KVM_SET_DEBUGREGS vcpu %d: %w", v.id, unix.EINVAL)
	}
	v.c.dr, v.c.dr6, v.c.dr7 = d.DB, d.DR6|dr6Fixed, d.DR7|dr7Fixed
	v.c.updateWatch()
	v.c.updateSlow()
	return nil
}

// SetGuestDebug implements hv.VCPU (KVM_SET_GUEST_DEBUG): flags outside
// hv.DebugFlagsKnown are EINVAL; DebugInjectDB/BP queue the exception for
// the next entry (EBUSY while one is queued; #DB wins when both are set),
// with or without DebugEnable, as KVM does; without DebugEnable the other
// flags are dropped. routeDebug applies the rest.
func (v *VCPU) SetGuestDebug(d *hv.GuestDebug) error {
	if err := v.check(); err != nil {
		return err
	}
	if d.Flags&^hv.DebugFlagsKnown != 0 {
		return fmt.Errorf("KVM_SET_GUEST_DEBUG vcpu %d flags %s: unknown flags: %w", v.id, d.Flags, unix.EINVAL)
	}
	c := v.c
	if d.Flags&(hv.DebugInjectDB|hv.DebugInjectBP) != 0 {
		if c.injectVec >= 0 {
			return fmt.Errorf("KVM_SET_GUEST_DEBUG vcpu %d: an injected exception is still pending: %w", v.id, unix.EBUSY)
		}
		c.injectVec = vecBP
		if d.Flags&hv.DebugInjectDB != 0 {
			c.injectVec = vecDB
		}
	}
	g := *d
	if g.Flags&hv.DebugEnable == 0 {
		g = hv.GuestDebug{}
	} else if g.Flags&hv.DebugUseHWBP == 0 {
		g.DebugReg = [8]uint64{}
	}
	c.dbg = g
	c.updateWatch()
	c.updateSlow()
	return nil
}

// CPUID implements hv.VCPU: a copy of the table the cpuid instruction
// answers from.
func (v *VCPU) CPUID() (hv.CPUID, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	return v.c.cpuid.Clone(), nil
}

// cpuidMaxEntries is KVM_MAX_CPUID_ENTRIES.
const cpuidMaxEntries = 256

// SetCPUID implements hv.VCPU (KVM_SET_CPUID2). As KVM since 5.16, a vCPU
// that has run refuses a different table (EBUSY); the same one is fine.
func (v *VCPU) SetCPUID(t hv.CPUID) error {
	if err := v.check(); err != nil {
		return err
	}
	if len(t) > cpuidMaxEntries {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: %d entries: %w", v.id, len(t), unix.E2BIG)
	}
	if v.c.ran && !slices.Equal(v.c.cpuid, t) {
		return fmt.Errorf("KVM_SET_CPUID2 vcpu %d: the vCPU has run, its CPUID is frozen: %w", v.id, unix.EBUSY)
	}
	if !v.c.ran { // after a run the table is the same one: keep the counters
		v.c.cpuid = t.Clone()
		v.c.pmuConfigure()
	}
	return nil
}

// HarvestDirtyRing implements hv.VCPU.
func (v *VCPU) HarvestDirtyRing(fn func(slot uint32, offset uint64)) (int, error) {
	if err := v.check(); err != nil {
		return 0, err
	}
	if v.ring == nil {
		return 0, fmt.Errorf("vcpu %d: harvest: dirty ring not enabled on this VM: %w", v.id, unix.EINVAL)
	}
	return v.ring.harvest(fn), nil
}

// Stats implements hv.VCPU.
func (v *VCPU) Stats() (hv.Stats, error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	s := &v.c.st
	cum := func(name string, val uint64) hv.Stat {
		return hv.Stat{Name: name, Kind: "cumulative", Values: []uint64{val}}
	}
	return hv.Stats{
		cum("exits", s.exits),
		cum("io_exits", s.ioExits),
		cum("mmio_exits", s.mmioExits),
		cum("halt_exits", s.haltExits),
		cum("halts", s.halts),
		cum("msr_exits", s.msrExits),
		cum("hypercalls", s.hypercalls),
		cum("dirty_ring_full_exits", s.ringFullExits),
		cum("instructions", s.instructions),
		cum("exceptions", s.exceptions),
		cum("interrupts", s.interrupts),
		cum("pf_taken", s.pfTaken),
		cum("decodes", s.decodes),
		cum("tlb_fills", s.tlbFills),
		cum("blocks", s.blocks),
		cum("code_evictions", s.codeEvictions),
		{Name: "decode_cache_bytes", Kind: "instant", Values: []uint64{uint64(v.c.codeBytes)}},
	}, nil
}

// Close implements hv.VCPU.
func (v *VCPU) Close() error {
	if v.closed.Swap(true) {
		return nil
	}
	vm := v.vm
	vm.mu.Lock()
	for i, o := range vm.vcpus {
		if o == v {
			vm.vcpus = append(vm.vcpus[:i:i], vm.vcpus[i+1:]...)
			break
		}
	}
	list := append([]*VCPU(nil), vm.vcpus...)
	vm.running.Store(&list)
	vm.mu.Unlock()
	return nil
}

// Run implements hv.VCPU. Devices attached to the VM are served inside;
// other exits return. When ctx ends the guest stops at the next
// instruction boundary and Run returns an error wrapping ctx.Err().
func (v *VCPU) Run(ctx context.Context) (exit hv.Exit, err error) {
	if err := v.check(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("vcpu %d: run stopped: %w", v.id, err)
	}
	vm := v.vm
	// Close waits for every Run to leave (and guest memory with it).
	vm.runMu.RLock()
	defer vm.runMu.RUnlock()
	if vm.closing.Load() {
		return nil, fmt.Errorf("vcpu %d: run: %w", v.id, hv.ErrVMClosed)
	}
	c := v.c
	c.ran = true
	c.pmuRefresh()
	c.runGen++
	gen := c.runGen
	stop := context.AfterFunc(ctx, func() {
		c.stopGen.Store(gen)
		c.poke(attnStop)
		c.wakeUp()
	})
	defer stop()
	if e := c.checkState(); e != nil {
		return e, nil
	}
	c.complete()
	c.runs++
	c.flushTLB() // the host may have edited page tables or code meanwhile
	exit, err = c.runLoop()
	if errors.Is(err, hv.ErrVMClosed) {
		err = fmt.Errorf("vcpu %d: run stopped: %w", v.id, err)
	}
	if errors.Is(err, errStopped) {
		err = fmt.Errorf("vcpu %d: run stopped: %w", v.id, context.Cause(ctx))
		if ctx.Err() != nil {
			err = fmt.Errorf("vcpu %d: run stopped: %w", v.id, ctx.Err())
		}
	}
	if exit != nil {
		c.st.exits++
	}
	return exit, err
}

// checkState refuses to enter a guest that is not in 64-bit long mode,
// as a VM entry with invalid guest state fails (exit reason 33).
func (c *cpu) checkState() hv.Exit {
	if c.shutdown {
		return &hv.ShutdownExit{}
	}
	s := &c.sr
	ok := s.CR0&hv.CR0PE != 0 && s.CR0&hv.CR0PG != 0 && s.CR4&hv.CR4PAE != 0 &&
		s.EFER&hv.EFERLMA != 0 && s.CS.L == 1
	if !ok {
		// Outside long mode the emu runs nothing, but a first instruction
		// no slot backs is what KVM reports first (its emulator cannot
		// fetch it: set_memory_region_test's zero-memslot case).
		if s.CR0&hv.CR0PG == 0 {
			fetch := s.CS.Base + c.rip
			if s.CR0&hv.CR0PE == 0 {
				fetch = (s.CS.Base + c.rip&0xffff) & 0xffffffff
			}
			if c.vm.mm.Load().find(fetch) == nil {
				detail := fmt.Sprintf("emu: instruction fetch from guest-physical %#x, which no memslot backs (CS base %#x, rip %#x)", fetch, s.CS.Base, c.rip)
				c.intErr = hv.InternalErrorExit{Suberror: internalEmulation, Data: []uint64{c.rip}, Detail: detail}
				return &c.intErr
			}
		}
		c.failExit = hv.FailEntryExit{Reason: 0x80000021, CPU: uint32(c.v.id)}
		return &c.failExit
	}
	return nil
}

// complete hands the host's answer to the last exit to the guest: the
// value of an IN or MMIO read, an MSR read result, a hypercall return;
// and moves past an OUT reported with RIP at it, unless the host moved
// RIP (KVM's complete_fast_pio_out compares the linear RIP).
func (c *cpu) complete() {
	if o := c.outSkip; o.atInsn {
		if c.rip == o.insn {
			c.rip = o.next
			// KVM completes the OUT as an instruction: under TF, or a
			// host single-step armed during the exit, its step trap
			// comes before anything else runs (kvm_skip_emulated_instruction).
			if c.rflags&hv.FlagTF != 0 || c.dbg.Flags&(hv.DebugEnable|hv.DebugSingleStep) == hv.DebugEnable|hv.DebugSingleStep {
				c.pendTrap = true
				c.setSlow()
			}
		}
		c.outSkip = pendingWrite{}
	}
	if n := len(c.replay); n > 0 && !c.replay[n-1].done {
		r := &c.replay[n-1]
		var b []byte
		if r.port {
			b = c.ioExit.Data
		} else {
			b = c.mmioExit.Data
		}
		var buf [8]byte
		copy(buf[:], b)
		r.val = binary.LittleEndian.Uint64(buf[:]) & sizeMask[r.n]
		r.done = true
		c.setSlow()
	}
	switch c.msrPend {
	case 1, 2:
		e := &c.msrExit
		c.rip += 2
		if e.Error {
			c.cur = c.rip - 2
			c.rip = c.cur
			c.fault = guestFault{vec: vecGP, hasCode: true}
			c.enter()
			c.deliverFault()
			c.leave()
		} else if c.msrPend == 1 {
			c.regs[0], c.regs[2] = e.Data&0xffffffff, e.Data>>32
		}
		c.msrPend = 0
	}
	if c.hcPend {
		c.regs[0] = c.hcExit.Ret
		c.hcPend = false
	}
}

// takeExit returns the next exit for the host, oldest first.
func (c *cpu) takeExit() hv.Exit {
	if len(c.pend) > 0 {
		p := c.pend[0]
		c.pend = append(c.pend[:0], c.pend[1:]...)
		if p.port {
			if p.atInsn {
				c.rip, c.outSkip = p.insn, p
			}
			c.ioBuf = [8]byte(p.data)
			c.ioExit = hv.IOExit{Port: uint16(p.addr), Size: p.n, Count: 1, Data: c.ioBuf[:p.n]}
			return &c.ioExit
		}
		c.mmioBuf = p.data
		c.mmioExit = hv.MMIOExit{GPA: p.addr, Len: p.n, Write: true, Data: c.mmioBuf[:p.n]}
		return &c.mmioExit
	}
	if c.exit != nil {
		e := c.exit
		c.exit = nil
		return e
	}
	if c.ringFull || c.v.ring.softFull() {
		c.ringFull = false
		c.st.ringFullExits++
		return &hv.DirtyRingFullExit{}
	}
	return nil
}
