package vgpu

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Config is how a Device is wired to its VM.
type Config struct {
	// Name is the device's name in errors and reports ("vgpu0" if empty).
	Name string
	// Memory is guest memory: the shared page, the submission areas and
	// the engines' command streams live there. Required.
	Memory hv.GuestMemory
	// IRQ, when set, receives the device's interrupts as fixed interrupts
	// of Vector at vCPU IRQVCPU (a wired MSI). Without it interrupts are
	// still latched in RegIIR and counted, not delivered.
	IRQ     hv.Interrupts
	IRQVCPU int
	Vector  uint8
	// QueueDepth bounds each engine's queue of workloads (default 64); a
	// submission beyond it fails its workload with ErrQueueFull.
	QueueDepth int
}

// Stats counts what the device did since it was created (Reset does not
// clear them): the numbers the PV vs legacy comparison is made of.
type Stats struct {
	MMIOReads, MMIOWrites uint64 // guest accesses to BAR0: one exit each
	PVSubmits             uint64 // accepted PV submissions
	LegacySubmits         uint64 // accepted 4-write ELSP submissions
	Rejected              uint64 // submissions refused by validation
	Workloads             uint64 // workloads queued to engines
	Completed, Failed     uint64 // workloads that ended, each exactly once
	CtxSwitchIRQs         uint64 // context-switch interrupts raised
	UserIRQs              uint64 // MI_USER_INTERRUPT interrupts raised
	IRQErrors             uint64 // interrupts the VM refused to deliver
	CTBMessages           uint64 // CTB messages consumed
	CTBTriggers           uint64 // PV_SEND_TRIGGER notifications
	Errors                uint64 // error statuses set
}

// workload is one context queued to an engine.
type workload struct {
	engine int
	desc   uint64
	ctx    uint64 // guest-physical address of the command stream
	legacy bool   // the ELSP path: CSB entry and context-switch interrupt on completion
	gen    uint64 // device generation; a Reset fails older workloads
}

// engineState is one engine's registers and queue.
type engineState struct {
	elspIdx   int
	elsp      [4]uint32
	csb       [CSBEntries]uint64
	csbWrite  uint32 // index of the last entry written (CSBEntries-1 after reset)
	csbRead   uint32
	completed uint32
	failed    uint32
	queue     chan workload
}

// Device is the vGPU model. It implements hv.Device on one MMIO region
// (BAR0, BAR0Size bytes). Its methods are safe for concurrent use: several
// vCPUs may access it while its engines run.
type Device struct {
	name      string
	mem       hv.GuestMemory
	engineMem hv.GuestMemory // the engines' view; tests replace it to tell accesses apart
	irq       hv.Interrupts
	irqVCPU   int
	vector    uint8
	// trace, when set (by tests), sees each CTB message's action and data.
	trace func(action uint32, data []uint32)

	mu            sync.Mutex
	displayReady  uint32
	g2vNotify     uint32
	pvCaps        uint32
	sharedGPA     uint64 // the shared_page_gpa register
	sharedPage    uint64 // the registered page
	sharedEnabled bool
	subGPA        uint64
	subSet        bool
	errCode       uint32
	errCount      uint32
	iir           uint32
	engines       []*engineState
	gen           uint64
	inflight      int
	// idle is signalled (with mu) when inflight drops to 0, so Reset can
	// wait for workloads an engine has taken off its queue.
	idle   *sync.Cond
	stats  Stats
	closed bool

	quit      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New makes a device and starts its engines; Close stops them.
func New(cfg Config) (*Device, error) {
	if cfg.Memory == nil {
		return nil, errors.New("new vgpu: Config.Memory is required")
	}
	if cfg.IRQ != nil {
		if err := hv.CheckVector(cfg.Vector); err != nil {
			return nil, fmt.Errorf("new vgpu: %w", err)
		}
	}
	depth := cfg.QueueDepth
	if depth <= 0 {
		depth = 64
	}
	d := &Device{
		name: cfg.Name, mem: cfg.Memory, engineMem: cfg.Memory,
		irq: cfg.IRQ, irqVCPU: cfg.IRQVCPU, vector: cfg.Vector,
		quit: make(chan struct{}),
	}
	d.idle = sync.NewCond(&d.mu)
	if d.name == "" {
		d.name = "vgpu0"
	}
	for range Engines {
		d.engines = append(d.engines, &engineState{queue: make(chan workload, depth)})
	}
	d.resetLocked()
	for i := range d.engines {
		d.wg.Add(1)
		go d.engineLoop(i)
	}
	return d, nil
}

// Name implements hv.Device.
func (d *Device) Name() string { return d.name }

// Region is BAR0 at base, as Attach wants it.
func Region(base uint64) hv.Region {
	return hv.Region{Space: hv.SpaceMMIO, Base: base, Size: BAR0Size}
}

// Access implements hv.Device: one guest access to BAR0. Reads have no
// side effects; writes are split into the dwords they touch, each merged
// into the register's current value, so a byte or word write behaves as
// a read-modify-write of its dword and an 8-byte write (writeq) as two
// dword writes, low first.
func (d *Device) Access(a *hv.Access) error {
	n := uint64(len(a.Data))
	if a.Region != 0 || (n != 1 && n != 2 && n != 4 && n != 8) || a.Offset > BAR0Size || n > BAR0Size-a.Offset {
		return fmt.Errorf("vgpu access region %d offset %#x size %d: outside BAR0", a.Region, a.Offset, n)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if a.Write {
		d.stats.MMIOWrites++
	} else {
		d.stats.MMIOReads++
	}
	for first := a.Offset &^ 3; first < a.Offset+n; first += 4 {
		v := d.read32(uint32(first))
		for i := uint64(0); i < 4; i++ {
			off := first + i
			if off < a.Offset || off >= a.Offset+n {
				continue
			}
			k := off - a.Offset
			if a.Write {
				v = v&^(0xff<<(8*i)) | uint32(a.Data[k])<<(8*i)
			} else {
				a.Data[k] = byte(v >> (8 * i))
			}
		}
		if a.Write {
			d.write32(uint32(first), v)
		}
	}
	return nil
}

// read32 is the register dword at off (dword aligned), d.mu held.
func (d *Device) read32(off uint32) uint32 {
	if off >= PVInfoBase && off < PVInfoBase+PVInfoSize {
		return d.readPVInfo(off - PVInfoBase)
	}
	if off >= ModelBase && off < ModelBase+0x1000 {
		return d.readModel(off)
	}
	if e, reg, ok := engineReg(off); ok {
		s := d.engines[e]
		switch {
		case reg >= RegCSBBuf && reg < RegCSBBuf+8*CSBEntries:
			i := (reg - RegCSBBuf) / 8
			if (reg-RegCSBBuf)%8 == 0 {
				return uint32(s.csb[i])
			}
			return uint32(s.csb[i] >> 32)
		case reg == RegCSBPtr:
			return s.csbWrite | s.csbRead<<CSBReadShift
		}
	}
	return 0 // ELSP and unmodelled registers read 0
}

func (d *Device) readPVInfo(off uint32) uint32 {
	switch off {
	case OffMagic:
		return Magic & 0xffffffff
	case OffMagic + 4:
		return uint32(Magic >> 32)
	case OffVersionMajor:
		return VersionMajor | VersionMinor<<16
	case OffVGTCaps:
		return VGTCapsFullPPGTT | VGTCapsHWSPEmulation | VGTCapsPV
	case OffDisplayReady:
		return d.displayReady
	case OffG2VNotify:
		return d.g2vNotify
	case OffPVCaps:
		return d.pvCaps
	case OffSharedPage:
		return uint32(d.sharedGPA)
	case OffSharedPage + 4:
		return uint32(d.sharedGPA >> 32)
	}
	return 0
}

func (d *Device) readModel(off uint32) uint32 {
	switch off {
	case RegError:
		return d.errCode
	case RegErrorCount:
		return d.errCount
	case RegIIR:
		return d.iir
	}
	if off >= RegCompleted && off < RegCompleted+RegEngStride*uint32(len(d.engines)) {
		e := d.engines[(off-RegCompleted)/RegEngStride]
		switch (off - RegCompleted) % RegEngStride {
		case 0:
			return e.completed
		case RegFailed - RegCompleted:
			return e.failed
		}
	}
	return 0
}

// engineReg maps a BAR0 offset to an engine and a register offset.
func engineReg(off uint32) (engine int, reg uint32, ok bool) {
	for _, e := range Engines {
		if off >= e.Base && off < e.Base+0x1000 {
			return e.ID, off - e.Base, true
		}
	}
	return 0, 0, false
}

// write32 is a guest write of v to the register dword at off, d.mu held.
func (d *Device) write32(off, v uint32) {
	switch off {
	case PVInfoBase + OffDisplayReady:
		d.displayReady = v
	case PVInfoBase + OffG2VNotify:
		d.g2vNotify = v
		d.notify(v)
	case PVInfoBase + OffPVCaps:
		// The guest can only keep what the host offers.
		d.pvCaps = v & HostPVCaps
	case PVInfoBase + OffSharedPage:
		d.sharedGPA = d.sharedGPA&^0xffffffff | uint64(v)
	case PVInfoBase + OffSharedPage + 4:
		d.sharedGPA = d.sharedGPA&0xffffffff | uint64(v)<<32
	case RegError:
		d.errCode = ErrNone
	case RegIIR:
		d.iir &^= v
	default:
		// Identity fields (magic, version, vgt_id, vgt_caps) and
		// everything unmodelled ignore writes.
		if e, reg, ok := engineReg(off); ok {
			switch reg {
			case RegELSP:
				d.elspWrite(e, v)
			case RegCSBPtr:
				// Masked write (_MASKED_FIELD): bits 31:16 select which of
				// bits 15:0 change; only the read pointer is the guest's.
				mask := v >> 16 & (0xf << CSBReadShift)
				s := d.engines[e]
				s.csbRead = (s.csbRead<<CSBReadShift&^mask | v&mask) >> CSBReadShift
				if s.csbRead >= CSBEntries {
					s.csbRead = CSBEntries - 1
				}
			}
		}
	}
}

// notify acts on a g2v_notify value, d.mu held.
func (d *Device) notify(v uint32) {
	switch v {
	case G2VSharedPageRegister:
		d.registerSharedPage()
	case G2VPVSendTrigger:
		d.stats.CTBTriggers++
		d.sendTrigger()
	case G2VPPGTTL3Create, G2VPPGTTL3Destroy, G2VPPGTTL4Create, G2VPPGTTL4Destroy,
		G2VExeclistContextCreate, G2VExeclistContextDestroy:
		// Shadow page tables and contexts are not modelled: the model's
		// GGTT and PPGTT are guest-physical memory.
	default:
		d.setError(ErrUnknownG2V)
	}
}

// registerSharedPage is SHARED_PAGE_REGISTER: a valid page gets the
// protocol version at bytes 0 and 2 before the MMIO write returns; an
// invalid one (unaligned, unbacked, read-only) turns PV off (pv_caps = 0)
// and is left unwritten.
func (d *Device) registerSharedPage() {
	gpa := d.sharedGPA
	var ver [4]byte
	binary.LittleEndian.PutUint16(ver[0:], PVMajor)
	binary.LittleEndian.PutUint16(ver[2:], PVMinor)
	if gpa%SharedPageSize != 0 || d.mem.WriteGPA(gpa, ver[:]) != nil {
		d.pvCaps = 0
		d.sharedEnabled = false
		d.setError(ErrSharedPageInvalid)
		return
	}
	d.sharedPage = gpa
	d.sharedEnabled = true
}

// setError records code in RegError (the first since it was cleared).
func (d *Device) setError(code uint32) {
	if d.errCode == ErrNone {
		d.errCode = code
	}
	d.errCount++
	d.stats.Errors++
}

// Stats returns a snapshot of the device's counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Error returns the RegError value (for host-side checks).
func (d *Device) Error() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.errCode
}

// Drain waits until every queued workload has completed or failed.
func (d *Device) Drain(ctx context.Context) error {
	for {
		d.mu.Lock()
		n := d.inflight
		d.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("vgpu drain: %d workloads still in flight: %w", n, ctx.Err())
		case <-time.After(50 * time.Microsecond):
		}
	}
}

// Reset implements hv.Device: registers go back to their power-on values,
// and every workload in flight completes or fails exactly once before
// Reset returns: queued ones fail, one an engine has already taken runs
// to its end (or fails on the new generation).
func (d *Device) Reset() error {
	d.mu.Lock()
	d.gen++
	d.resetLocked()
	d.mu.Unlock()
	for i := range d.engines {
		d.failQueued(i)
	}
	d.mu.Lock()
	for d.inflight > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
	return nil
}

// resetLocked sets the power-on register values, d.mu held.
func (d *Device) resetLocked() {
	d.displayReady, d.g2vNotify = 0, 0
	d.pvCaps = HostPVCaps
	d.sharedGPA, d.sharedPage, d.sharedEnabled = 0, 0, false
	d.subGPA, d.subSet = 0, false
	d.errCode, d.errCount, d.iir = ErrNone, 0, 0
	for _, s := range d.engines {
		s.elspIdx, s.elsp = 0, [4]uint32{}
		s.csb = [CSBEntries]uint64{}
		s.csbWrite, s.csbRead = CSBEntries-1, CSBEntries-1
		s.completed, s.failed = 0, 0
	}
}

// failQueued fails every workload waiting in engine e's queue.
func (d *Device) failQueued(e int) {
	for {
		select {
		case w := <-d.engines[e].queue:
			d.finish(w, false)
		default:
			return
		}
	}
}

// Close implements hv.Device: it stops the engines; workloads still queued fail.
func (d *Device) Close() error {
	d.closeOnce.Do(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		close(d.quit)
		d.wg.Wait()
		for i := range d.engines {
			d.failQueued(i)
		}
	})
	return nil
}

// Sub is s minus an earlier snapshot o: what happened in between.
func (s Stats) Sub(o Stats) Stats {
	return Stats{
		MMIOReads: s.MMIOReads - o.MMIOReads, MMIOWrites: s.MMIOWrites - o.MMIOWrites,
		PVSubmits: s.PVSubmits - o.PVSubmits, LegacySubmits: s.LegacySubmits - o.LegacySubmits,
		Rejected: s.Rejected - o.Rejected, Workloads: s.Workloads - o.Workloads,
		Completed: s.Completed - o.Completed, Failed: s.Failed - o.Failed,
		CtxSwitchIRQs: s.CtxSwitchIRQs - o.CtxSwitchIRQs, UserIRQs: s.UserIRQs - o.UserIRQs,
		IRQErrors: s.IRQErrors - o.IRQErrors, CTBMessages: s.CTBMessages - o.CTBMessages,
		CTBTriggers: s.CTBTriggers - o.CTBTriggers, Errors: s.Errors - o.Errors,
	}
}
