package pagereport

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// The guest reporter: a guest program that drives the device through its
// MMIO registers and implements the free-page-reporting policy of
// Duyck's v5 series (page_reporting.c, Aug 2019):
//
//   - free blocks are tracked per order; only orders of at least MinOrder
//     (order 9, 2 MiB with 4 KiB pages: pageblock_order on x86-64) are
//     reported;
//   - freeing a block makes the guest check its order, and a report pass
//     runs when the order's free count reaches reported + HighWater (v5's
//     PAGE_REPORTING_HWM);
//   - a pass isolates up to Capacity (32) free, unreported blocks into one
//     descriptor chain of device-writable buffers, notifies, and polls the
//     used index until the device completes it;
//   - blocks are flagged reported only when the element completed without
//     the device asking for a reset; allocating a block clears its flag.
//
// The host lays out the data the guest works on (the allocator's block
// tables and a script of operations) in guest memory; the guest program
// is one interpreter of that script, so specs compose scenarios without
// new guest code. The allocator is a model of the buddy free lists, not a
// buddy allocator: blocks do not split or merge.
const (
	// MinOrder is the smallest order reported (PAGE_REPORTING_MIN_ORDER).
	MinOrder = 9
	// Capacity is the most entries one report carries (PAGE_REPORTING_CAPACITY).
	Capacity = 32
	// HighWater is v5's PAGE_REPORTING_HWM: a pass starts when an order's
	// free count reaches its reported count plus this.
	HighWater = 32
)

// Op is one step of the guest's script.
type Op struct {
	Kind  OpKind
	Order int    // index into ReporterConfig.Orders
	Block int    // block index in that order
	Arg   uint64 // stage (Sync, Check), value (Alloc), descriptor head (Post)
}

// OpKind says what an Op does.
type OpKind uint64

// Script operations.
const (
	// OpInit resets the device, negotiates features and enables the
	// reporting queue, then SYNCs StageInit (Arg, status, QueueReady,
	// QueueNumMax), or StageInitFailed (status) if FEATURES_OK was refused.
	OpInit OpKind = iota + 1
	// OpFree frees a block and reports its order if the free count
	// reached the high-water mark.
	OpFree
	// OpAlloc allocates a block (clearing its reported flag) and writes
	// Arg into the first quadword of each of its 4 KiB pages.
	OpAlloc
	// OpSync SYNCs StageSync (Arg, reports, entries, failures).
	OpSync
	// OpCheck SYNCs StageCheck (Arg, the OR of every quadword of the
	// block, the block's address).
	OpCheck
	// OpFlush reports the order's free, unreported blocks now, as the
	// merged design does with a pass's leftovers.
	OpFlush
	// OpPost makes the descriptor chain at head Arg available as it is
	// (the host wrote it) and waits for it like a report.
	OpPost
)

// Block flags in the guest's block tables.
const (
	BlockFree     = 1
	BlockReported = 2
)

// Stages the reporter SYNCs with (the first ucall argument; the step's
// Arg is the second).
const (
	StageInit       = 0xfff0
	StageCheck      = 0xfff1
	StageSync       = 0xffff
	StageInitFailed = 0xfe00
)

// OrderBlocks is one order's blocks: their guest-physical addresses.
type OrderBlocks struct {
	Order  int
	Blocks []uint64
}

// ReporterConfig describes the guest driver's setup.
type ReporterConfig struct {
	MMIO      uint64 // the device's region base; mapped for the guest
	QueueSize int    // 32 unless set
	Features  uint64 // the driver's features; FeatureVersion1|FeaturePageReporting unless set
	Poison    uint32 // written to poison_val before DRIVER_OK when non-zero
	Orders    []OrderBlocks
	Script    []Op
	// PollLimit is how many times the guest polls the used index before
	// it gives up on a report (counted as a failure); 1<<24 unless set.
	PollLimit uint64
}

// The control block's layout (quadwords from its base, R14 in the guest).
const (
	cbMMIO      = 0x00
	cbDesc      = 0x08
	cbAvail     = 0x10
	cbUsed      = 0x18
	cbQueueSize = 0x20
	cbFeatLo    = 0x28
	cbFeatHi    = 0x30
	cbPoison    = 0x38
	cbAvailIdx  = 0x40 // the driver's next avail index
	cbUsedSeen  = 0x48 // used index the driver has consumed
	cbScript    = 0x50
	cbScriptLen = 0x58
	cbReports   = 0x60 // completed reports
	cbEntries   = 0x68 // blocks reported
	cbFailures  = 0x70 // reports that did not complete
	cbPollLimit = 0x78
	cbPicked    = 0x80 // Capacity quadwords: block indices of the report in flight
	cbOrders    = cbPicked + 8*Capacity
	// Per order, orderSize bytes from cbOrders: blocks table, count,
	// nr_free, reported, block size in bytes, reportable.
	ordBlocks     = 0x00
	ordCount      = 0x08
	ordFree       = 0x10
	ordReported   = 0x18
	ordBytes      = 0x20
	ordReportable = 0x28
	orderSize     = 0x30

	opSize = 32 // kind, order, block, arg
)

// Reporter is the guest driver: its data in guest memory and its program.
type Reporter struct {
	g      *guest.Guest
	cfg    ReporterConfig
	cb     uint64
	desc   uint64
	avail  uint64
	used   uint64
	tables []uint64 // per order: the block table's address
}

// NewReporter lays out the driver's data in g's memory (rings, control
// block, block tables, script) and maps the device's registers for test
// code. Build the program with Program and load it with g.Load.
func NewReporter(g *guest.Guest, cfg ReporterConfig) (*Reporter, error) {
	if cfg.QueueSize == 0 {
		cfg.QueueSize = MinQueueSize
	}
	if cfg.Features == 0 {
		cfg.Features = FeatureVersion1 | FeaturePageReporting
	}
	if cfg.PollLimit == 0 {
		cfg.PollLimit = 1 << 24
	}
	if cfg.QueueSize < 1 || cfg.QueueSize > MaxQueueSize {
		return nil, fmt.Errorf("guest reporter: queue size %d", cfg.QueueSize)
	}
	r := &Reporter{g: g, cfg: cfg}
	var err error
	alloc := func(size, align uint64) uint64 {
		if err != nil {
			return 0
		}
		var a uint64
		a, err = g.Alloc(size, align)
		return a
	}
	n := cfg.QueueSize
	r.desc = alloc(DescSize*uint64(n), hv.PageSize)
	r.avail = alloc(AvailSize(n), hv.PageSize)
	r.used = alloc(UsedSize(n), hv.PageSize)
	r.cb = alloc(cbOrders+orderSize*uint64(len(cfg.Orders)), hv.PageSize)
	for _, o := range cfg.Orders {
		r.tables = append(r.tables, alloc(16*uint64(max(1, len(o.Blocks))), 16))
	}
	script := alloc(opSize*uint64(max(1, len(cfg.Script))), 32)
	if err != nil {
		return nil, fmt.Errorf("guest reporter: %w", err)
	}
	if err := g.PT.Map(cfg.MMIO, cfg.MMIO, RegionSize+(hv.PageSize-RegionSize%hv.PageSize)%hv.PageSize, guest.PTEWrite|guest.PTEUser|guest.PTEPCD); err != nil {
		return nil, fmt.Errorf("guest reporter: map registers: %w", err)
	}
	w := func(gpa, v uint64) {
		if err == nil {
			err = g.Write64(gpa, v)
		}
	}
	w(r.cb+cbMMIO, cfg.MMIO)
	w(r.cb+cbDesc, r.desc)
	w(r.cb+cbAvail, r.avail)
	w(r.cb+cbUsed, r.used)
	w(r.cb+cbQueueSize, uint64(n))
	w(r.cb+cbFeatLo, cfg.Features&0xffffffff)
	w(r.cb+cbFeatHi, cfg.Features>>32)
	w(r.cb+cbPoison, uint64(cfg.Poison))
	w(r.cb+cbScript, script)
	w(r.cb+cbScriptLen, uint64(len(cfg.Script)))
	w(r.cb+cbPollLimit, cfg.PollLimit)
	for i, o := range cfg.Orders {
		base := r.cb + cbOrders + orderSize*uint64(i)
		w(base+ordBlocks, r.tables[i])
		w(base+ordCount, uint64(len(o.Blocks)))
		w(base+ordBytes, hv.PageSize<<o.Order)
		if o.Order >= MinOrder {
			w(base+ordReportable, 1)
		}
		for j, b := range o.Blocks {
			if b%(hv.PageSize<<o.Order) != 0 {
				return nil, fmt.Errorf("guest reporter: order %d block %d at %#x is not aligned to its size", o.Order, j, b)
			}
			w(r.tables[i]+16*uint64(j), b)
		}
	}
	for i, op := range cfg.Script {
		if op.Kind != OpInit && op.Kind != OpSync && op.Kind != OpPost {
			if op.Order < 0 || op.Order >= len(cfg.Orders) || (op.Kind != OpFlush && (op.Block < 0 || op.Block >= len(cfg.Orders[op.Order].Blocks))) {
				return nil, fmt.Errorf("guest reporter: script step %d %+v names no block", i, op)
			}
		}
		at := script + opSize*uint64(i)
		w(at, uint64(op.Kind))
		w(at+8, uint64(op.Order))
		w(at+16, uint64(op.Block))
		w(at+24, op.Arg)
	}
	if err != nil {
		return nil, fmt.Errorf("guest reporter: %w", err)
	}
	return r, nil
}

// AddRAM gives g a memslot of size bytes at gpa (both 2 MiB aligned)
// backed by a new hv.Memory, identity-mapped for test code with 2 MiB
// pages: the guest RAM a reporter reports from. The caller closes the
// memory after the guest.
func AddRAM(g *guest.Guest, slot uint32, gpa, size uint64, backing hv.Backing, flags hv.MemFlags) (*hv.Memory, error) {
	if gpa%guest.Page2M != 0 || size%guest.Page2M != 0 {
		return nil, fmt.Errorf("guest RAM [%#x, +%#x): not 2 MiB aligned", gpa, size)
	}
	mem, err := hv.NewMemory(size, backing)
	if err != nil {
		return nil, err
	}
	if err := g.VM.SetMemslot(hv.Memslot{Slot: slot, GPA: gpa, Size: size, Memory: mem, Flags: flags}); err != nil {
		mem.Close()
		return nil, fmt.Errorf("guest RAM slot %d: %w", slot, err)
	}
	if err := g.PT.MapSized(gpa, gpa, size, guest.Page2M, guest.PTEWrite|guest.PTEUser); err != nil {
		_ = g.VM.DeleteMemslot(slot)
		mem.Close()
		return nil, fmt.Errorf("guest RAM map: %w", err)
	}
	return mem, nil
}

// Desc, Avail and Used are the rings' guest-physical addresses.
func (r *Reporter) Desc() uint64 { return r.desc }

// Avail is the avail ring's guest-physical address.
func (r *Reporter) Avail() uint64 { return r.avail }

// Used is the used ring's guest-physical address.
func (r *Reporter) Used() uint64 { return r.used }

// WriteDesc stores descriptor i for an OpPost step.
func (r *Reporter) WriteDesc(i int, d Desc) error {
	b, err := r.g.Bytes(r.desc+DescSize*uint64(i), DescSize)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b[0:], d.Addr)
	binary.LittleEndian.PutUint32(b[8:], d.Len)
	binary.LittleEndian.PutUint16(b[12:], d.Flags)
	binary.LittleEndian.PutUint16(b[14:], d.Next)
	return nil
}

// Counters are the guest's own counts: completed reports, blocks
// reported, reports that failed.
type Counters struct{ Reports, Entries, Failures uint64 }

// Counters reads them from guest memory.
func (r *Reporter) Counters() (Counters, error) {
	var c Counters
	var err error
	rd := func(off uint64) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = r.g.Read64(r.cb + off)
		return v
	}
	c.Reports, c.Entries, c.Failures = rd(cbReports), rd(cbEntries), rd(cbFailures)
	return c, err
}

// OrderState is the guest's view of one order.
type OrderState struct {
	Free, Reported uint64
	Flags          []uint64 // per block: BlockFree, BlockReported
}

// Order reads order i's counters and block flags.
func (r *Reporter) Order(i int) (OrderState, error) {
	base := r.cb + cbOrders + orderSize*uint64(i)
	var s OrderState
	var err error
	if s.Free, err = r.g.Read64(base + ordFree); err != nil {
		return s, err
	}
	if s.Reported, err = r.g.Read64(base + ordReported); err != nil {
		return s, err
	}
	for j := range r.cfg.Orders[i].Blocks {
		f, err := r.g.Read64(r.tables[i] + 16*uint64(j) + 8)
		if err != nil {
			return s, err
		}
		s.Flags = append(s.Flags, f)
	}
	return s, nil
}

// Program builds the guest program: run the script, then DONE.
func (r *Reporter) Program() *guest.Program {
	p := r.g.Program()
	r.Emit(p)
	return p
}

// Emit writes the reporter into p at the current position: code that
// reaches it runs the script, then DONE. A multi-vCPU program branches
// around it on the other vCPUs (RDI holds the vCPU index at entry).
func (r *Reporter) Emit(p *guest.Program) {
	e := &emitter{p: p, cb: r.cb}
	e.emit()
}

// emitter writes the program. Register use: R14 control block, R13 the
// current script step, R12 steps left; the routines use RAX-RDX, RSI,
// RDI and R8-R11 freely. R15 is the runtime's ucall page.
type emitter struct {
	p  *guest.Program
	cb uint64
	// routines
	initL, freeL, allocL, checkL, reportL, postL, waitL *asm.Label
}

func (e *emitter) emit() {
	p := e.p
	for _, l := range []**asm.Label{&e.initL, &e.freeL, &e.allocL, &e.checkL, &e.reportL, &e.postL, &e.waitL} {
		*l = p.NewLabel()
	}
	p.MovAbs(asm.R14, e.cb)
	p.Mov(asm.R13, asm.Q(asm.R14, cbScript))
	p.Mov(asm.R12, asm.Q(asm.R14, cbScriptLen))
	loop, done, next := p.NewLabel(), p.NewLabel(), p.NewLabel()
	p.Bind(loop)
	p.Test(asm.R12, asm.R12)
	p.Jcc(asm.CondE, done)
	p.Mov(asm.RAX, asm.Q(asm.R13, 0))
	dispatch := []struct {
		kind OpKind
		to   *asm.Label
	}{{OpInit, e.initL}, {OpFree, e.freeL}, {OpAlloc, e.allocL}, {OpCheck, e.checkL}, {OpFlush, e.reportL}, {OpPost, e.postL}}
	for _, d := range dispatch {
		skip := p.NewLabel()
		p.Cmp(asm.RAX, asm.Imm(int64(d.kind)))
		p.Jcc(asm.CondNE, skip)
		e.loadOrder()
		p.Call(d.to)
		p.Jmp(next)
		p.Bind(skip)
	}
	sync := p.NewLabel()
	p.Cmp(asm.RAX, asm.Imm(int64(OpSync)))
	p.Jcc(asm.CondE, sync)
	p.Fail("pagereport guest: unknown script operation", asm.RAX)
	p.Bind(sync)
	p.Mov(asm.RAX, asm.Q(asm.R13, 24))
	p.Mov(asm.RBX, asm.Q(asm.R14, cbReports))
	p.Mov(asm.RCX, asm.Q(asm.R14, cbEntries))
	p.Mov(asm.RDX, asm.Q(asm.R14, cbFailures))
	p.Sync(StageSync, asm.RAX, asm.RBX, asm.RCX, asm.RDX)
	p.Bind(next)
	p.Add(asm.R13, asm.Imm(opSize))
	p.Dec(asm.R12)
	p.Jmp(loop)
	p.Bind(done)
	p.Done()

	e.emitInit()
	e.emitFree()
	e.emitAlloc()
	e.emitCheck()
	e.emitReport()
	e.emitPost()
	e.emitWait()
}

// loadOrder sets R8 to the step's order record, R9 to its block index,
// R10 to the block's table entry and R11 to the step's argument.
func (e *emitter) loadOrder() {
	p := e.p
	p.Mov(asm.R8, asm.Q(asm.R13, 8))
	p.Imul3(asm.R8, asm.R8, orderSize)
	p.Lea(asm.R8, asm.Q(asm.R14, cbOrders).Idx(asm.R8, 1))
	p.Mov(asm.R9, asm.Q(asm.R13, 16))
	p.Mov(asm.R10, asm.R9)
	p.Shl(asm.R10, asm.Imm(4))
	p.Add(asm.R10, asm.Q(asm.R8, ordBlocks))
	p.Mov(asm.R11, asm.Q(asm.R13, 24))
}

// emitInit: reset, negotiate, enable the queue, DRIVER_OK (virtio 1.2,
// 3.1.1), with 32-bit register accesses as virtio-mmio requires.
func (e *emitter) emitInit() {
	p := e.p
	p.Bind(e.initL)
	p.Mov(asm.RBX, asm.Q(asm.R14, cbMMIO))
	p.Mov(asm.EAX, asm.D(asm.RBX, RegMagic))
	p.AssertEq(asm.EAX, asm.Imm(MagicValue), "pagereport guest: bad magic")
	p.Mov(asm.EAX, asm.D(asm.RBX, RegDeviceID))
	p.AssertEq(asm.EAX, asm.Imm(DeviceID), "pagereport guest: not a balloon")
	p.Mov(asm.D(asm.RBX, RegStatus), asm.Imm(0))
	p.Mov(asm.D(asm.RBX, RegStatus), asm.Imm(StatusAcknowledge|StatusDriver))
	p.Mov(asm.D(asm.RBX, RegDriverFeaturesSel), asm.Imm(0))
	p.Mov(asm.RAX, asm.Q(asm.R14, cbFeatLo))
	p.Mov(asm.D(asm.RBX, RegDriverFeatures), asm.EAX)
	p.Mov(asm.D(asm.RBX, RegDriverFeaturesSel), asm.Imm(1))
	p.Mov(asm.RAX, asm.Q(asm.R14, cbFeatHi))
	p.Mov(asm.D(asm.RBX, RegDriverFeatures), asm.EAX)
	p.Mov(asm.D(asm.RBX, RegStatus), asm.Imm(StatusAcknowledge|StatusDriver|StatusFeaturesOK))
	p.Mov(asm.EAX, asm.D(asm.RBX, RegStatus))
	ok := p.NewLabel()
	p.Test(asm.EAX, asm.Imm(StatusFeaturesOK))
	p.Jcc(asm.CondNE, ok)
	p.Sync(StageInitFailed, asm.RAX)
	p.Ret()
	p.Bind(ok)
	noPoison := p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.R14, cbPoison))
	p.Test(asm.EAX, asm.EAX)
	p.Jcc(asm.CondE, noPoison)
	p.Mov(asm.D(asm.RBX, RegConfig+ConfigPoisonVal), asm.EAX)
	p.Bind(noPoison)
	// Fresh rings: the avail and used headers start at zero.
	p.Mov(asm.RAX, asm.Q(asm.R14, cbAvail))
	p.Mov(asm.D(asm.RAX, 0), asm.Imm(0))
	p.Mov(asm.RAX, asm.Q(asm.R14, cbUsed))
	p.Mov(asm.D(asm.RAX, 0), asm.Imm(0))
	p.Mov(asm.Q(asm.R14, cbAvailIdx), asm.Imm(0))
	p.Mov(asm.Q(asm.R14, cbUsedSeen), asm.Imm(0))
	p.Mov(asm.D(asm.RBX, RegQueueSel), asm.Imm(ReportingQueue))
	p.Mov(asm.RAX, asm.Q(asm.R14, cbQueueSize))
	p.Mov(asm.D(asm.RBX, RegQueueNum), asm.EAX)
	for _, q := range []struct {
		cb  int32
		reg int32
	}{{cbDesc, RegQueueDescLow}, {cbAvail, RegQueueDriverLow}, {cbUsed, RegQueueDeviceLow}} {
		p.Mov(asm.RAX, asm.Q(asm.R14, q.cb))
		p.Mov(asm.D(asm.RBX, q.reg), asm.EAX)
		p.Shr(asm.RAX, asm.Imm(32))
		p.Mov(asm.D(asm.RBX, q.reg+4), asm.EAX)
	}
	p.Mov(asm.D(asm.RBX, RegQueueReady), asm.Imm(1))
	p.Mov(asm.D(asm.RBX, RegStatus), asm.Imm(StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK))
	p.Mov(asm.EAX, asm.D(asm.RBX, RegStatus))
	p.Mov(asm.ECX, asm.D(asm.RBX, RegQueueReady))
	p.Mov(asm.EDX, asm.D(asm.RBX, RegQueueNumMax))
	p.Sync(StageInit, asm.R11, asm.RAX, asm.RCX, asm.RDX)
	p.Ret()
}

// emitFree: mark the block free; if it is of a reportable order and the
// order's free count reached reported + HighWater, report.
func (e *emitter) emitFree() {
	p := e.p
	p.Bind(e.freeL)
	ret := p.NewLabel()
	p.Test(asm.Q(asm.R10, 8), asm.Imm(BlockFree))
	p.Jcc(asm.CondNE, ret) // a double free changes nothing
	p.Mov(asm.Q(asm.R10, 8), asm.Imm(BlockFree))
	p.Inc(asm.Q(asm.R8, ordFree))
	p.Cmp(asm.Q(asm.R8, ordReportable), asm.Imm(0))
	p.Jcc(asm.CondE, ret)
	p.Mov(asm.RAX, asm.Q(asm.R8, ordReported))
	p.Add(asm.RAX, asm.Imm(HighWater))
	p.Cmp(asm.Q(asm.R8, ordFree), asm.RAX)
	p.Jcc(asm.CondB, ret)
	p.Jmp(e.reportL) // tail call
	p.Bind(ret)
	p.Ret()
}

// emitAlloc: take the block off the free list (dropping its reported
// flag and count) and touch each of its pages with the step's value.
func (e *emitter) emitAlloc() {
	p := e.p
	p.Bind(e.allocL)
	touch, notReported := p.NewLabel(), p.NewLabel()
	p.Mov(asm.RAX, asm.Q(asm.R10, 8))
	p.Test(asm.RAX, asm.Imm(BlockFree))
	p.Jcc(asm.CondE, touch)
	p.Dec(asm.Q(asm.R8, ordFree))
	p.Test(asm.RAX, asm.Imm(BlockReported))
	p.Jcc(asm.CondE, notReported)
	p.Dec(asm.Q(asm.R8, ordReported))
	p.Bind(notReported)
	p.Mov(asm.Q(asm.R10, 8), asm.Imm(0))
	p.Bind(touch)
	p.Mov(asm.RDI, asm.Q(asm.R10, 0))
	p.Mov(asm.RCX, asm.Q(asm.R8, ordBytes))
	p.Shr(asm.RCX, asm.Imm(12))
	l := p.Here()
	p.Mov(asm.Q(asm.RDI, 0), asm.R11)
	p.Add(asm.RDI, asm.Imm(hv.PageSize))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, l)
	p.Ret()
}

// emitCheck: SYNC the OR of every quadword of the block.
func (e *emitter) emitCheck() {
	p := e.p
	p.Bind(e.checkL)
	p.Mov(asm.RDI, asm.Q(asm.R10, 0))
	p.Mov(asm.RCX, asm.Q(asm.R8, ordBytes))
	p.Shr(asm.RCX, asm.Imm(3))
	p.Xor(asm.EAX, asm.EAX)
	l := p.Here()
	p.Or(asm.RAX, asm.Q(asm.RDI, 0))
	p.Add(asm.RDI, asm.Imm(8))
	p.Dec(asm.RCX)
	p.Jcc(asm.CondNE, l)
	p.Mov(asm.RBX, asm.Q(asm.R10, 0))
	p.Sync(StageCheck, asm.R11, asm.RAX, asm.RBX)
	p.Ret()
}

// emitReport: isolate up to Capacity free, unreported blocks of the
// order (R8) into one chain of device-writable descriptors, make it
// available, notify, wait; flag the blocks reported only on success.
func (e *emitter) emitReport() {
	p := e.p
	p.Bind(e.reportL)
	scan, skip, full, ret := p.NewLabel(), p.NewLabel(), p.NewLabel(), p.NewLabel()
	p.Cmp(asm.Q(asm.R8, ordReportable), asm.Imm(0))
	p.Jcc(asm.CondE, ret)
	p.Mov(asm.RSI, asm.Q(asm.R8, ordBlocks)) // block table entry
	p.Xor(asm.ECX, asm.ECX)                  // block index
	p.Xor(asm.EDX, asm.EDX)                  // entries picked
	p.Mov(asm.RDI, asm.Q(asm.R14, cbDesc))   // next descriptor
	p.Bind(scan)
	p.Cmp(asm.RCX, asm.Q(asm.R8, ordCount))
	p.Jcc(asm.CondAE, full)
	p.Cmp(asm.Q(asm.RSI, 8), asm.Imm(BlockFree)) // free and not reported
	p.Jcc(asm.CondNE, skip)
	p.Mov(asm.RAX, asm.Q(asm.RSI, 0))
	p.Mov(asm.Q(asm.RDI, 0), asm.RAX)
	p.Mov(asm.RAX, asm.Q(asm.R8, ordBytes))
	p.Mov(asm.D(asm.RDI, 8), asm.EAX)
	// flags WRITE|NEXT, next = this descriptor + 1: one dword store.
	p.Lea(asm.RAX, asm.Q(asm.RDX, 1))
	p.Shl(asm.EAX, asm.Imm(16))
	p.Or(asm.EAX, asm.Imm(DescFWrite|DescFNext))
	p.Mov(asm.D(asm.RDI, 12), asm.EAX)
	p.Mov(asm.Q(asm.R14, cbPicked).Idx(asm.RDX, 8), asm.RCX)
	p.Add(asm.RDI, asm.Imm(DescSize))
	p.Inc(asm.RDX)
	p.Cmp(asm.RDX, asm.Imm(Capacity))
	p.Jcc(asm.CondE, full)
	p.Bind(skip)
	p.Add(asm.RSI, asm.Imm(16))
	p.Inc(asm.RCX)
	p.Jmp(scan)
	p.Bind(full)
	p.Test(asm.RDX, asm.RDX)
	p.Jcc(asm.CondE, ret)
	// The last descriptor ends the chain.
	p.Mov(asm.D(asm.RDI, 12-DescSize), asm.Imm(DescFWrite))
	p.Push(asm.RDX)
	p.Xor(asm.EAX, asm.EAX) // head: descriptor 0
	p.Call(e.waitL)
	p.Pop(asm.RDX)
	p.Test(asm.RAX, asm.RAX)
	p.Jcc(asm.CondNE, ret) // failed: nothing is flagged
	// Success: flag the picked blocks and count them.
	p.Xor(asm.ECX, asm.ECX)
	flag := p.Here()
	p.Mov(asm.RAX, asm.Q(asm.R14, cbPicked).Idx(asm.RCX, 8))
	p.Shl(asm.RAX, asm.Imm(4))
	p.Add(asm.RAX, asm.Q(asm.R8, ordBlocks))
	p.Mov(asm.Q(asm.RAX, 8), asm.Imm(BlockFree|BlockReported))
	p.Inc(asm.RCX)
	p.Cmp(asm.RCX, asm.RDX)
	p.Jcc(asm.CondB, flag)
	p.Add(asm.Q(asm.R8, ordReported), asm.RDX)
	p.Add(asm.Q(asm.R14, cbEntries), asm.RDX)
	p.Bind(ret)
	p.Ret()
}

// emitPost: make the host-written chain at head Arg available and wait.
func (e *emitter) emitPost() {
	p := e.p
	p.Bind(e.postL)
	p.Mov(asm.RAX, asm.R11)
	p.Jmp(e.waitL) // tail call
}

// emitWait: put head RAX in the avail ring, publish the index, notify and
// poll the used index. RAX is 0 when the element completed, 1 when the
// device set DEVICE_NEEDS_RESET or the poll limit ran out (a failure).
func (e *emitter) emitWait() {
	p := e.p
	p.Bind(e.waitL)
	p.Mov(asm.RBX, asm.Q(asm.R14, cbAvail))
	p.Mov(asm.RCX, asm.Q(asm.R14, cbAvailIdx))
	p.Mov(asm.RDX, asm.Q(asm.R14, cbQueueSize))
	p.Dec(asm.RDX)
	p.And(asm.RDX, asm.RCX) // ring slot (the size is a power of two)
	p.Mov(asm.W(asm.RBX, 4).Idx(asm.RDX, 2), asm.AX)
	p.Inc(asm.RCX)
	p.Mov(asm.Q(asm.R14, cbAvailIdx), asm.RCX)
	// x86 keeps stores in order: the entry is visible before the index.
	p.Mov(asm.W(asm.RBX, 2), asm.CX)
	p.Mov(asm.RBX, asm.Q(asm.R14, cbMMIO))
	p.Mov(asm.D(asm.RBX, RegQueueNotify), asm.Imm(ReportingQueue))
	p.Mov(asm.RSI, asm.Q(asm.R14, cbUsed))
	p.Mov(asm.RDI, asm.Q(asm.R14, cbUsedSeen))
	p.Inc(asm.EDI)
	p.Movzx(asm.EDI, asm.DI) // the used index we wait for, mod 2^16
	p.Mov(asm.R9, asm.Q(asm.R14, cbPollLimit))
	poll, ok, fail := p.NewLabel(), p.NewLabel(), p.NewLabel()
	p.Bind(poll)
	p.Movzx(asm.EAX, asm.W(asm.RSI, 2))
	p.Cmp(asm.EAX, asm.EDI)
	p.Jcc(asm.CondE, ok)
	p.Mov(asm.EAX, asm.D(asm.RBX, RegStatus))
	p.Test(asm.EAX, asm.Imm(StatusNeedsReset))
	p.Jcc(asm.CondNE, fail)
	p.Pause()
	p.Dec(asm.R9)
	p.Jcc(asm.CondNE, poll)
	p.Bind(fail)
	p.Inc(asm.Q(asm.R14, cbFailures))
	p.Mov(asm.EAX, asm.Imm(1))
	p.Ret()
	p.Bind(ok)
	p.Mov(asm.Q(asm.R14, cbUsedSeen), asm.RDI)
	p.Inc(asm.Q(asm.R14, cbReports))
	p.Xor(asm.EAX, asm.EAX)
	p.Ret()
}
