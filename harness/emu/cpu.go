package emu

import (
	"bytes"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync/atomic"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
	"golang.org/x/arch/x86/x86asm"
)

// Attention bits: reasons for the interpreter to leave its fast path at
// the next instruction boundary. Other goroutines set them; the vCPU
// checks one word per instruction.
const (
	attnStop  = 1 << iota // the Run context ended
	attnEpoch             // the memory map or write protection changed
	attnCode              // some page holding decoded code was written
	attnExit              // an exit is pending (set by the vCPU itself)
	attnIRQ               // an interrupt was latched in the local APIC
	attnClose             // the VM is closing
	attnPMU               // counting started inside a block: its next instructions count one at a time
	// attnSlow mirrors c.slow (the vCPU's own, set and cleared with it
	// by setSlow and updateSlow), so the block loop reads one word per
	// instruction; service leaves it alone.
	attnSlow
)

// Permission bits of TLB entries, one per access kind and privilege.
const (
	permRS = 1 << iota // supervisor read
	permRU             // user read
	permWS             // supervisor write
	permWU             // user write
	permXS             // supervisor fetch
	permXU             // user fetch
)

const tlbSize = 64 // data TLB entries (direct mapped by page number)
const ctlbSize = 16

// tlbEntry maps one guest-virtual page straight to host memory. Only RAM
// pages are cached; MMIO always takes the slow path.
type tlbEntry struct {
	vpn   uint64
	perm  uint8
	page  *[hv.PageSize]byte
	code  *uint32 // memInfo code word: odd = holds decoded code
	armed *uint64 // dirty-log word, nil when the slot does not log
	abit  uint64
}

// ctlbEntry maps a code page to its decode cache.
type ctlbEntry struct {
	vpn  uint64
	perm uint8
	cp   *codePage
}

// codePage is the decode cache of one guest-physical page: the blocks
// decoded from it, indexed by the page offset they start at (two levels,
// so a page with little code costs little).
type codePage struct {
	gpa    uint64
	word   *uint32            // memInfo code word of the backing page
	gen    uint32             // *word when the blocks were decoded
	host   *[hv.PageSize]byte // current host page (set on every code TLB fill)
	runs   uint64             // c.runs when snap was last compared with memory
	bytes  int                // decode-cache bytes charged for this page
	snap   [hv.PageSize]byte
	blocks [hv.PageSize / 64]*[64]*block
}

// block is a run of decoded instructions with one entry: it ends after
// the first instruction that may transfer control (other than a
// conditional jump) or change anything fetching depends on (inst.cont
// false), at the end of the page, before an instruction that crosses
// into the next page, or at maxBlock. A conditional jump inside a block
// that is taken leaves it there (runBlocks compares RIP after each
// instruction).
type block struct {
	insts []inst
	// succ links the blocks that ran right after this one (fall-through
	// and the taken branch, or a return's two callers) in the same page,
	// so runBlocks skips the code TLB and index lookups while nothing the
	// code TLB depends on changed (cpu.codeGen; see runBlocks).
	succ [2]blockLink
}

// blockLink is a successor of a block: the block starting at rip.
type blockLink struct {
	rip uint64
	b   *block
}

// noVPN is a page number no address has.
const noVPN = ^uint64(0)

// maxBlock bounds the instructions of one block.
const maxBlock = 64

// blockAt returns the cached block starting at page offset off, or nil.
func (cp *codePage) blockAt(off uint64) *block {
	if t := cp.blocks[off>>6&63]; t != nil {
		return t[off&63]
	}
	return nil
}

// Decode-cache accounting: what a page, a second-level index and a block
// cost, charged against Options.DecodeCacheBytes.
const (
	codePageCost = int(unsafe.Sizeof(codePage{})) + 64 // + its map entry
	blockTabCost = int(unsafe.Sizeof([64]*block{}))
	blockCost    = int(unsafe.Sizeof(block{})) + 16 // + allocation rounding
	instCost     = int(unsafe.Sizeof(inst{}))
)

// stop reasons of exec.
const (
	stopNone  = iota
	stopExit  // c.exit is set
	stopFault // c.fault is set
	stopRestart
)

// guestFault is an exception raised by an instruction (carried by panic
// from deep inside memory accesses to the loop, which delivers it).
type guestFault struct {
	vec     uint8
	code    uint32
	hasCode bool
	cr2     uint64
	trap    bool // RIP after the instruction (INT n, INT3, INTO, TF traps)
	soft    bool // INT n: the gate DPL is checked against CPL
	ext     bool // external event (interrupt)
}

// Signals carried by panic besides *guestFault.
type exitSignal struct{}    // c.exit holds the exit; RIP per the exit's rule
type restartSignal struct{} // re-run the instruction (state changed under it)
type errorSignal struct{ err error }

// cpu is the architectural and interpreter state of one vCPU.
type cpu struct {
	vm *VM
	v  *VCPU

	regs   [32]uint64 // the 16 GPRs; the rest stay 0 (see offset)
	rip    uint64     // next instruction (during execution: already past the current one)
	cur    uint64     // the executing instruction
	rflags uint64
	lz     lazyFlags

	cpl                 uint8
	rperm, wperm, xperm uint8 // TLB permission bit for the current CPL
	// slow and pmuOn are read after every instruction: next to the
	// registers (see also st).
	slow     bool          // see updateSlow
	pmuOn    bool          // some counter counts, or the APIC timer runs: each retired instruction calls pmuCount
	attn     atomic.Uint32 // attention bits (attn* above), read after every instruction
	blockCPL uint8         // CPL at the start of the running block (the PMU counts its instructions there)
	// blk is the block runBlocks executes without counting each
	// instruction (nil otherwise): its instructions before c.cur have
	// retired but st.instructions does not count them yet (retired()
	// does). blkRIP is its first instruction's address.
	blk    *block
	blkRIP uint64
	// linkGen and linkVPN: see runBlocks.
	linkGen, linkVPN uint64
	st               vcpuStats
	sr               hv.Sregs
	msr              msrState
	dr               [4]uint64
	dr6, dr7         uint64
	apic             lapic.APIC
	cpuid            hv.CPUID
	dbg              hv.GuestDebug
	watch            []watchpoint // data breakpoints in effect
	watchHost        bool         // they are the host's (DebugUseHWBP)
	watchHit         uint64       // DR6 bits hit by the executing instruction
	pendWatch        uint64       // a hit held back while an exit was reported
	ran              bool         // Run was called (CPUID is frozen, as KVM does from 5.16)
	pmu              pmu          // performance counters (pmu.go)
	clk              clock        // deterministic time (timer.go)

	// Attention and epoch handshake with other goroutines.
	inGuest  atomic.Bool
	ackEpoch atomic.Uint64
	stopGen  atomic.Uint64
	runGen   uint64
	epoch    uint64
	mm       *memMap
	last     *slot // last slot hit (cheap locality cache)

	dtlb [tlbSize]tlbEntry
	ctlb [ctlbSize]ctlbEntry
	// codeGen moves whenever the code TLB or the fetch permission could
	// answer differently (flush, fill, eviction, INVLPG, CPL change):
	// block links (block.succ) are followed only while it stands still.
	codeGen uint64
	pages   map[uint64]*codePage
	runs    uint64

	// Decode-cache size: bytes charged now, and the budget (evictCode
	// runs at the next block boundary once codeBytes exceeds it).
	codeBytes, codeBudget int

	// slow (above) is true when something must be looked at around
	// every instruction: TF, debug breakpoints, a pending interrupt, a
	// replayed MMIO/PIO read. It is false in the common case.
	replay   []ioRecord
	replayAt int

	intShadow bool // STI: the next instruction runs before any interrupt
	halted    bool // HLT with an irqchip: waiting for an interrupt
	wake      chan struct{}
	injectVec int  // DebugInjectDB/BP: the exception to deliver on entry (-1: none)
	pendTrap  bool // a TF trap waits for the exit in front of it

	fault       guestFault
	exit        hv.Exit
	internalMsg string // detail of the last internal-error exit
	pend        []pendingWrite
	shutdown    bool
	ringFull    bool
	firstVec    int // vector being delivered (-1: none), for #DF rules

	// Exit values are reused: an Exit is valid until the next Run.
	ioExit   hv.IOExit
	ioBuf    [8]byte
	mmioExit hv.MMIOExit
	mmioBuf  [8]byte
	busExit  hv.MMIOExit
	busIO    hv.IOExit
	intErr   hv.InternalErrorExit
	dbgExit  hv.DebugExit
	msrExit  hv.MSRExit
	hcExit   hv.HypercallExit
	msrPend  int // 1: rdmsr exit outstanding, 2: wrmsr exit outstanding
	hcPend   bool
	// outSkip is the OUT reported with RIP at it (OutRIPAtInsn): the
	// next Run moves RIP past it unless the host moved RIP meanwhile.
	outSkip  pendingWrite
	failExit hv.FailEntryExit

	// Debug state only the slow path and breakpointed pages use, last so
	// that the hot fields keep their layout.
	bpPages   []uint64     // pages (linear >> 12) holding execute breakpoints in effect
	ioWatch   []watchpoint // I/O breakpoints in effect (ports)
	watchMet  uint64       // DR6 bits of breakpoints not enabled whose condition it met
	rfLoaded  bool         // the executing instruction (IRET) loaded RFLAGS.RF
	ssBlock   bool         // the executing instruction loaded SS (MOV SS)
	heldWatch uint64       // data breakpoints a MOV SS held for the next instruction
	heldStep  bool         // a single-step trap a MOV SS held
	stepOnly  bool         // tests: every instruction takes the slow path (no blocks)
}

type vcpuStats struct {
	exits, ioExits, mmioExits, haltExits, instructions uint64
	pfTaken, exceptions, decodes, tlbFills, msrExits   uint64
	hypercalls, ringFullExits, interrupts, halts       uint64
	blocks, codeEvictions                              uint64
}

// ioRecord is an MMIO or port access an instruction made: replayed (a read's
// value, a write dropped) when the instruction runs again, so every access
// reaches its device or the host once. seq is the instruction's sequence
// number; done is false for a read the host has not answered yet.
type ioRecord struct {
	seq   uint64
	port  bool
	write bool
	addr  uint64
	n     int
	val   uint64
	done  bool
}

// pendingWrite is an MMIO write or OUT the host must see; the guest has
// already gone past it.
type pendingWrite struct {
	port bool
	addr uint64
	n    int
	data [8]byte
	// atInsn marks an OUT reported with RIP at the instruction
	// (OutRIPAtInsn): insn is its address, next where the guest goes on.
	atInsn     bool
	insn, next uint64
}

func newCPU(vm *VM, v *VCPU) *cpu {
	c := &cpu{vm: vm, v: v, pages: map[uint64]*codePage{}, firstVec: -1, injectVec: -1, wake: make(chan struct{}, 1),
		codeBudget: vm.h.opt.DecodeCacheBytes}
	if c.codeBudget <= 0 {
		c.codeBudget = DefaultDecodeCacheBytes
	}
	c.reset()
	return c
}

// poke sets attention bits from any goroutine.
func (c *cpu) poke(bits uint32) { c.attn.Or(bits) }

// enter marks the vCPU as executing guest code and catches up with the
// memory map; leave undoes it. Memory is only touched between the two, so
// syncVCPUs knows whom to wait for.
func (c *cpu) enter() {
	c.inGuest.Store(true)
	c.syncEpoch()
}

func (c *cpu) leave() { c.inGuest.Store(false) }

func (c *cpu) syncEpoch() {
	e := c.vm.epoch.Load()
	if e != c.epoch || c.mm == nil {
		c.mm = c.vm.mm.Load()
		c.last = nil
		c.flushTLB()
		c.epoch = e
	}
	c.ackEpoch.Store(e)
}

// flushTLB drops every cached translation.
func (c *cpu) flushTLB() {
	for i := range c.dtlb {
		c.dtlb[i].perm = 0
	}
	c.flushCode()
}

func (c *cpu) flushCode() {
	c.codeGen++
	for i := range c.ctlb {
		c.ctlb[i].perm = 0
	}
}

// callout runs fn outside the interpreter (a device, a handler): the vCPU
// does not hold up syncVCPUs meanwhile. If the memory map moved while fn
// ran, the instruction is restarted so no stale host pointer is used.
func (c *cpu) callout(fn func()) {
	e := c.epoch
	c.leave()
	fn()
	c.enter()
	if c.epoch != e {
		panic(restartSignal{})
	}
}

// service handles attention bits; it returns a stop reason or stopNone.
func (c *cpu) service() int {
	bits := c.attn.And(attnSlow)
	if bits&attnEpoch != 0 {
		c.syncEpoch()
	}
	if bits&attnCode != 0 {
		c.flushCode()
	}
	if bits&attnIRQ != 0 {
		c.updateSlow()
	}
	if c.exit != nil || len(c.pend) > 0 || c.ringFull || c.halted || c.vm.closing.Load() {
		return stopExit
	}
	if c.stopGen.Load() == c.runGen {
		return stopExit
	}
	return stopNone
}

// exec interprets instructions until something stops it. Faults, exits
// and internal bugs arrive as panics and are turned into stop reasons here,
// once per exec call rather than once per instruction.
func (c *cpu) exec() (stop int) {
	defer func() {
		if p := recover(); p != nil {
			stop = c.onPanic(p)
		}
	}()
	for {
		if c.attn.Load()&^attnSlow != 0 {
			if s := c.service(); s != stopNone {
				return s
			}
		}
		if c.slow {
			c.slowStep()
			continue
		}
		if c.codeBytes > c.codeBudget {
			c.evictCode()
		}
		c.runBlocks()
	}
}

// fetch finds the decode cache of rip's page (rip is c.cur), refilling
// the code TLB on a miss. It returns nil when an execute breakpoint on
// the page fired instead. A page holding execute breakpoints is left out
// of the code TLB (perm 0), so each of its instructions comes back here.
func (c *cpu) fetch(rip uint64) *ctlbEntry {
	ce := &c.ctlb[(rip>>12)%ctlbSize]
	if ce.vpn != rip>>12 || ce.perm&c.xperm == 0 {
		return c.fetchMiss(rip)
	}
	return ce
}

// fetchMiss is fetch after a code TLB miss.
func (c *cpu) fetchMiss(rip uint64) *ctlbEntry {
	ce := c.fillCode(rip)
	if len(c.bpPages) > 0 && c.codeBreak(rip, ce) {
		return nil
	}
	return ce
}

// instAt returns the decoded instruction at rip: the first of the block
// starting there, decoding the block if needed, or, for an instruction
// that crosses into the next page, a fresh uncached decode.
func (c *cpu) instAt(rip uint64, cp *codePage) *inst {
	b := cp.blockAt(rip & 0xfff)
	if b == nil {
		if b = c.decodeBlock(rip, cp); b == nil {
			return c.decodeAt(rip, cp)
		}
	}
	return &b.insts[0]
}

// step executes one instruction: the slow path's unit.
func (c *cpu) step() {
	rip := c.rip
	// cur first: a fault fetching this instruction (after a jump or call
	// to a not-present or NX page) reports this rip, not the jump's.
	c.cur = rip
	ce := c.fetch(rip)
	if ce == nil {
		return
	}
	c.execOne(c.instAt(rip, ce.cp))
}

// execOne runs one decoded instruction at c.cur and retires it.
func (c *cpu) execOne(in *inst) {
	c.rip = c.cur + uint64(in.len)
	cpl := c.cpl // the ring the PMU counts the instruction in
	in.one()(c, in)
	c.st.instructions++
	if c.pmuOn && c.pmuCount(cpl, in) {
		c.pmuCheck(cpl)
	}
}

// retired is the number of instructions retired: st.instructions plus,
// inside a block that runBlocks counts at its end (c.blk), the block's
// instructions before the executing one (c.cur). Everything that reads
// the count while an instruction executes (the clock, the access replay
// log) reads it here, so it is exact at every instruction boundary.
func (c *cpu) retired() uint64 {
	n := c.st.instructions
	if b := c.blk; b != nil {
		off := c.cur - c.blkRIP
		for i := 0; off != 0 && i < len(b.insts); i++ {
			off -= uint64(b.insts[i].len)
			n++
		}
	}
	return n
}

// settle folds the uncounted instructions of the running block into
// st.instructions (a panic leaving runBlocks mid-block).
func (c *cpu) settle() {
	if c.blk != nil {
		c.st.instructions = c.retired()
		c.blk = nil
	}
}

// leaveBlock settles the count of the uncounted block (c.blk) left
// after in for attention, and counts in for the PMU if counting started
// in it.
func (c *cpu) leaveBlock(in *inst) {
	c.st.instructions += uint64(in.idx) + 1
	c.blk = nil
	if c.pmuOn && c.pmuCount(c.blockCPL, in) {
		c.pmuCheck(c.blockCPL)
	}
}

// runBlocks executes blocks from c.rip: the hot path. Each instruction
// retires exactly as step would run it (c.cur, c.rip, the instruction
// count and the PMU per instruction); after each, anything that needs the
// loop - an attention bit (another vCPU, a device, a write to decoded
// code, a pending exit) or the slow path (TF, an interrupt window, a
// replayed access) - sends it back to exec, so the next instruction sees
// it at the same boundary as it would one instruction at a time. Only a
// block's last instruction can change control flow, privilege or
// translation (inst.cont), so the rest need no fetch check; the next
// block is fetched (code TLB and all) like the first.
func (c *cpu) runBlocks() {
	// prev is the block that just ran to its end or a taken conditional
	// jump, found while the code TLB stood at gen. Its successor in the
	// same page is linked (block.succ) and, while codeGen has not moved,
	// found through the link: with the code TLB, the fetch permission
	// and the page's decodes all as they were when the link was made
	// (a page's decodes are only dropped by a fill, which moves codeGen),
	// the lookup would find the same block.
	var prev *block
	// c.linkGen and c.linkVPN: codeGen at the last lookup, and the page
	// of prev (fields, not locals: the block loop reads them only when a
	// block is left, and locals would be reloaded after every handler).
	for {
		rip := c.rip
		c.cur = rip
		var b *block
		if prev != nil && c.codeGen == c.linkGen && rip>>12 == c.linkVPN {
			if l := &prev.succ[0]; l.rip == rip && l.b != nil {
				b = l.b
			} else if l := &prev.succ[1]; l.rip == rip && l.b != nil {
				b = l.b
			}
		}
		last := false // return after this block (exec evicts first)
		if b == nil {
			g := c.codeGen
			ce := &c.ctlb[(rip>>12)%ctlbSize] // fetch, inlined
			if ce.vpn != rip>>12 || ce.perm&c.xperm == 0 {
				if ce = c.fetchMiss(rip); ce == nil {
					return
				}
			}
			if ce.perm == 0 {
				// A page with execute breakpoints: one instruction at a time.
				c.execOne(c.instAt(rip, ce.cp))
				return
			}
			b = ce.cp.blockAt(rip & 0xfff)
			if b == nil {
				if b = c.decodeBlock(rip, ce.cp); b == nil {
					c.execOne(c.decodeAt(rip, ce.cp))
					return
				}
				last = c.codeBytes > c.codeBudget
			}
			if prev != nil && g == c.linkGen && c.codeGen == g && rip>>12 == c.linkVPN {
				k := 0
				if prev.succ[0].b != nil {
					k = 1
				}
				prev.succ[k] = blockLink{rip: rip, b: b}
			}
			c.linkGen, c.linkVPN = c.codeGen, rip>>12
			if last {
				c.linkVPN = noVPN // no link followed from this block: exec evicts first
			}
		}
		c.st.blocks++
		c.blockCPL = c.cpl // constant inside a block: only its last instruction may change it
		insts := b.insts
		if c.pmuOn {
			// Counting: each instruction retires through the PMU.
			for i := range insts {
				in := &insts[i]
				next := c.rip + uint64(in.len)
				c.cur = c.rip
				c.rip = next
				in.one()(c, in)
				c.st.instructions++
				if c.pmuOn && c.pmuCount(c.blockCPL, &insts[i]) {
					c.pmuCheck(c.blockCPL)
				}
				if c.attn.Load() != 0 || c.slow {
					return
				}
				if c.rip != c.cur+uint64(insts[i].len) {
					break // a conditional jump inside the block was taken
				}
			}
			prev = b
		} else {
			// Nothing counts: the PMU is looked at only on the way out
			// (counting that starts inside the block pokes attnPMU, so
			// the instruction that started it is counted there and the
			// block's next ones run counted), and a register-only flag
			// producer followed by a conditional jump (inst.fuse) runs
			// as one step: the producer can neither fault nor touch
			// memory, so nothing between the two could need the loop but
			// an asynchronous attention bit, which the jump's boundary
			// sees as well.
			// Instructions retire uncounted (c.blk): st.instructions
			// moves when a block is left. Only instructions with post
			// bits need more than the attention check after them.
			c.blk, c.blkRIP = b, rip
			in := &insts[0]
			for {
				r := c.rip
				c.cur = r
				c.rip = r + uint64(in.len)
				in.fn(c, in)
				if in.post == 0 {
					if c.attn.Load() != 0 { // attnSlow included
						c.leaveBlock(in)
						return
					}
					in = nextInst(in)
					continue
				}
				if in.post&postPair != 0 {
					skip := in.post & postSkip
					in = nextInst(in) // the pair's handler ran the jump
					if skip != 0 {
						in = nextInst(in) // and the instruction after it
					}
				} else if in.post&postFuse != 0 {
					in = nextInst(in)
					r := c.rip
					c.cur = r
					c.rip = r + uint64(in.len)
					// cond, with E/NE and B/AE after the common kinds inlined.
					l := &c.lz
					cc := in.cc
					var taken bool
					switch {
					case cc>>1 == 2 && l.op != lzNone:
						taken = (l.res&sizeMask[l.size&15] == 0) != (cc&1 != 0)
					case cc>>1 == 1 && l.op >= lzLogic:
						taken = (l.cin != 0) != (cc&1 != 0)
					case cc>>1 == 1 && l.op == lzSub:
						m := sizeMask[l.size&15]
						taken = (l.a&m < l.b&m) != (cc&1 != 0)
					default:
						taken = c.cond(cc)
					}
					if taken {
						c.jumpTo(c.rip + in.dst.imm)
					}
				}
				if c.attn.Load() != 0 { // attnSlow included
					c.leaveBlock(in)
					return
				}
				// in is the last instruction or a conditional jump (only
				// a taken one leaves the block there).
				if in.post&postLast == 0 && c.rip == c.cur+uint64(in.len) {
					in = nextInst(in)
					continue
				}
				// The block is left for rip. Its successor comes from
				// its links right here, as the lookup at the top would
				// find it (CPL cannot have changed nor counting started
				// without moving codeGen or raising attention), unless
				// the block was just decoded (last).
				b := c.blk // not carried in a local: it would be reloaded after every handler
				c.st.instructions += uint64(in.idx) + 1
				rip := c.rip
				if c.codeGen != c.linkGen || rip>>12 != c.linkVPN {
					break
				}
				if rip == c.blkRIP {
					// A loop of one block: the lookup would find it again.
					c.st.blocks++
					in = firstInst(b)
					continue
				}
				nb := b.succ[0].b
				if b.succ[0].rip != rip || nb == nil {
					if nb = b.succ[1].b; b.succ[1].rip != rip || nb == nil {
						break
					}
				}
				c.st.blocks++
				c.blk, c.blkRIP = nb, rip
				in = firstInst(nb)
			}
			prev = c.blk
			c.blk = nil
		}
		if last {
			return
		}
	}
}

func (c *cpu) onPanic(p any) int {
	c.settle()
	c.pmuAbandon(p)
	switch s := p.(type) {
	case *guestFault:
		c.fault = *s
		if !s.trap {
			c.rip = c.cur
		}
		return stopFault
	case exitSignal:
		return stopExit
	case restartSignal:
		c.rip = c.cur
		return stopRestart
	case errorSignal:
		c.rip = c.cur
		c.exit = nil
		panic(s) // handled by run
	}
	// An emulator bug: never crash the host, report it as KVM reports an
	// emulation failure, with enough to find the bug.
	c.rip = c.cur
	c.internalMsg = fmt.Sprintf("emu: internal error at rip %#x (%s): %v\n%s", c.cur, c.describeInsn(c.cur), p, debug.Stack())
	c.intErr = hv.InternalErrorExit{Suberror: internalEmuBug, Data: []uint64{c.cur}, Detail: c.internalMsg}
	c.exit = &c.intErr
	return stopExit
}

// Internal error suberrors. 1 is KVM_INTERNAL_ERROR_EMULATION, which KVM
// reports for the same situations (page walks or fetches through MMIO).
const (
	internalEmulation = 1
	internalEmuBug    = 0xe000
)

// fillCode translates a fetch of rip's page and finds its decode cache.
func (c *cpu) fillCode(rip uint64) *ctlbEntry {
	gpa, perm := c.translate(rip, accFetch)
	ram := c.ramPage(gpa&^0xfff, false)
	if ram.page == nil {
		c.internal(internalEmulation, "instruction fetch from unbacked or MMIO guest-physical address %#x", gpa)
	}
	key := gpa &^ 0xfff
	cp := c.pages[key]
	if cp == nil || cp.word != ram.code {
		if cp != nil {
			c.codeBytes -= cp.bytes
		}
		cp = &codePage{gpa: key, word: ram.code, bytes: codePageCost}
		c.codeBytes += cp.bytes
		c.pages[key] = cp
		c.resetCodePage(cp, ram.page)
	} else if w := atomic.LoadUint32(cp.word); w != cp.gen || (cp.runs != c.runs && !bytes.Equal(cp.snap[:], ram.page[:])) {
		c.resetCodePage(cp, ram.page)
	}
	cp.runs = c.runs
	cp.host = ram.page
	ce := &c.ctlb[(rip>>12)%ctlbSize]
	*ce = ctlbEntry{vpn: rip >> 12, perm: perm, cp: cp}
	c.codeGen++
	return ce
}

// resetCodePage forgets a page's decodes and marks the page as holding
// code, so that writes to it reach the slow path and invalidate.
func (c *cpu) resetCodePage(cp *codePage, page *[hv.PageSize]byte) {
	for {
		w := atomic.LoadUint32(cp.word)
		if w&1 == 1 {
			cp.gen = w
			break
		}
		if atomic.CompareAndSwapUint32(cp.word, w, w+1) {
			cp.gen = w + 1
			break
		}
	}
	clear(cp.blocks[:])
	c.codeBytes -= cp.bytes - codePageCost
	cp.bytes = codePageCost
	cp.snap = *page
	cp.runs = c.runs
}

// decodeBlock decodes and caches the block starting at rip. It returns nil
// when the first instruction crosses into the next page (decodeAt runs
// it, uncached). Decoding stops inside the page: it never fetches, so it
// cannot fault.
func (c *cpu) decodeBlock(rip uint64, cp *codePage) *block {
	start := rip & 0xfff
	off := start
	var insts [maxBlock]inst
	n := 0
	for n < maxBlock && off < hv.PageSize {
		var buf [16]byte
		k := copy(buf[:15], cp.host[off:])
		in := &insts[n]
		decodeInto(in, buf[:k])
		if in.truncated && k < 15 || off+uint64(in.len) > hv.PageSize {
			break // crosses into the next page: its own (uncached) block
		}
		c.st.decodes++
		in.idx = uint8(n)
		if isJcc(in) {
			in.post |= postJcc
			if n > 0 && fusable(&insts[n-1]) {
				p := &insts[n-1]
				p.post |= postFuse
				if p.pair = pairKind(p, in); p.pair != pairNone {
					p.fn = pairs[p.pair].pair
					p.post |= postPair
				}
			}
		}
		// A skip pair's jump target (past in) must lie in the page: then
		// it is canonical as the jump is, and the handler need not check.
		if n >= 2 && insts[n-2].post&postPair != 0 && off+uint64(in.len) < hv.PageSize {
			if p := &insts[n-2]; skipKind(p, &insts[n-1], in) != pairNone {
				p.pair = skipKind(p, &insts[n-1], in)
				p.fn = pairs[p.pair].pair
				p.post |= postSkip
			}
		}
		n++
		off += uint64(in.len)
		if !in.cont {
			break
		}
	}
	if n == 0 {
		return nil
	}
	insts[n-1].post |= postLast
	b := &block{insts: append([]inst(nil), insts[:n]...)}
	t := cp.blocks[start>>6]
	if t == nil {
		t = new([64]*block)
		cp.blocks[start>>6] = t
		cp.bytes += blockTabCost
		c.codeBytes += blockTabCost
	}
	t[start&63] = b
	cost := blockCost + n*instCost
	cp.bytes += cost
	c.codeBytes += cost
	return b
}

// evictCode brings the decode cache back under its budget: it keeps the
// pages the code TLB holds (the code running now) while they fit in half
// the budget and forgets every other page. A page that is dropped is
// decoded again when it runs again; its memInfo code word stays odd, so a
// write to it still invalidates (needlessly, once).
func (c *cpu) evictCode() {
	keep := make(map[uint64]*codePage, ctlbSize)
	total := 0
	for i := range c.ctlb {
		cp := c.ctlb[i].cp
		if cp == nil || keep[cp.gpa] == cp || c.pages[cp.gpa] != cp {
			continue
		}
		if total+cp.bytes <= c.codeBudget/2 {
			keep[cp.gpa] = cp
			total += cp.bytes
		}
	}
	c.st.codeEvictions += uint64(len(c.pages) - len(keep))
	c.pages = keep
	c.codeGen++
	for i := range c.ctlb {
		if cp := c.ctlb[i].cp; cp != nil && keep[cp.gpa] != cp {
			c.ctlb[i] = ctlbEntry{}
		}
	}
	c.codeBytes = total
}

// decodeAt decodes the instruction at rip that crosses into the next page
// (fetching the rest, which may page-fault on the second page, as
// hardware does). It is not cached: the next page can change on its own.
func (c *cpu) decodeAt(rip uint64, cp *codePage) *inst {
	var buf [16]byte
	off := rip & 0xfff
	n := copy(buf[:15], cp.host[off:])
	in := decodeBytes(buf[:n])
	if in.truncated && n < 15 {
		c.fetchBytes((rip|0xfff)+1, buf[n:15])
		in = decodeBytes(buf[:15])
	}
	in.straddle = true
	c.st.decodes++
	return in
}

// fetchBytes reads code bytes at va with fetch permission checks.
func (c *cpu) fetchBytes(va uint64, dst []byte) {
	gpa, _ := c.translate(va, accFetch)
	ram := c.ramPage(gpa&^0xfff, false)
	if ram.page == nil {
		c.internal(internalEmulation, "instruction fetch from unbacked guest-physical address %#x", gpa)
	}
	copy(dst, ram.page[gpa&0xfff:])
}

// internal stops the vCPU with an internal-error exit.
func (c *cpu) internal(sub uint32, format string, args ...any) {
	c.internalMsg = fmt.Sprintf("emu: %s at rip %#x (%s)", fmt.Sprintf(format, args...), c.cur, c.describeInsn(c.cur))
	c.intErr = hv.InternalErrorExit{Suberror: sub, Data: []uint64{c.cur}, Detail: c.internalMsg}
	c.exit = &c.intErr
	c.rip = c.cur
	panic(exitSignal{})
}

// slowStep is one instruction with everything the fast path skips:
// pending interrupts, breakpoints, single-step, replayed reads.
func (c *cpu) slowStep() {
	if c.pendTrap || c.pendWatch != 0 {
		// Debug traps held back while an exit was reported.
		hit, step := c.pendWatch, c.pendTrap
		c.pendWatch, c.pendTrap = 0, false
		c.cur = c.rip
		c.routeTrap(hit, step)
	}
	if hit := c.watchHit; hit != 0 {
		// A data breakpoint hit by an instruction the fast path ran.
		c.watchHit = 0
		c.cur = c.rip
		c.routeTrap(hit, false)
	}
	c.watchMet = 0
	if c.injectVec >= 0 {
		// DebugInjectDB/BP: the exception KVM queued at SetGuestDebug.
		f := guestFault{vec: uint8(c.injectVec)}
		c.injectVec = -1
		c.cur = c.rip
		c.fault = f
		c.deliverFault()
		return
	}
	// An instruction running again to finish (its read answered by the
	// host, or restarted) is not interrupted, nor re-checked for
	// breakpoints: it already passed that boundary.
	resuming := len(c.replay) > 0 && c.replay[0].seq == c.st.instructions
	if !resuming {
		if c.deliverInterrupt() {
			// A host single-step without DebugBlockIRQ lands in the
			// handler, as on KVM (what BLOCKIRQ exists to avoid).
			c.routeDebug(dbgIntrStep, 0)
			return
		}
		if c.execBreakpoint() {
			return
		}
	}
	tf := c.rflags&hv.FlagTF != 0 || c.dbg.Flags&(hv.DebugEnable|hv.DebugSingleStep) == hv.DebugEnable|hv.DebugSingleStep
	c.replayAt = 0
	c.rfLoaded = false
	c.ssBlock = false
	c.step()
	c.replay = c.replay[:0]
	if !c.rfLoaded {
		// RF suppresses execute breakpoints for one instruction; an IRET
		// that pops it set keeps it for the instruction it returns to.
		c.rflags &^= hv.FlagRF
	}
	c.updateSlow()
	hit := c.watchHit
	c.watchHit = 0
	if c.ssBlock && (hit != 0 || tf) {
		// MOV SS holds debug exceptions until the next instruction has
		// run (SDM 6.8.3), so "mov ss; mov rsp" cannot be split.
		c.heldWatch |= hit
		c.heldStep = c.heldStep || tf
		c.setSlow()
		return
	}
	if c.heldWatch != 0 || c.heldStep {
		hit |= c.heldWatch
		tf = tf || c.heldStep
		c.heldWatch, c.heldStep = 0, false
	}
	if hit == 0 && !tf {
		return
	}
	// Data breakpoints and the single-step trap come after the
	// instruction, in one #DB (not after one that faulted or entered an
	// interrupt handler: those never get here). If the instruction left
	// an exit for the host (OUT, MMIO write), the host sees the exit first
	// and the trap follows on re-entry, as on KVM.
	if c.exit != nil || len(c.pend) > 0 {
		c.pendWatch |= hit
		c.pendTrap = c.pendTrap || tf
		c.setSlow()
		return
	}
	c.routeTrap(hit, tf)
}

// routeTrap routes the debug traps of one instruction boundary: data
// breakpoints hit (DR6 B0-B3 bits) and a single-step.
func (c *cpu) routeTrap(hit uint64, step bool) {
	if hit != 0 {
		hit |= c.watchMet
	}
	c.watchMet = 0
	switch {
	case hit != 0 && step:
		c.routeDebug(dbgWatchStep, hit)
	case hit != 0:
		c.routeDebug(dbgWatch, hit)
	case step:
		c.routeDebug(dbgStep, 0)
	}
}

// setSlow sends the vCPU to the slow path from the next instruction
// boundary on (until updateSlow finds nothing that needs it).
func (c *cpu) setSlow() {
	c.slow = true
	if c.attn.Load()&attnSlow == 0 {
		c.attn.Or(attnSlow)
	}
}

// updateSlow recomputes whether the slow path is needed.
func (c *cpu) updateSlow() {
	// Breakpoints do not need it: execute breakpoints are checked when
	// their code page is looked up (codeBreak), data breakpoints when
	// their data page is (watched pages never enter the data TLB).
	slow := c.stepOnly || c.rflags&(hv.FlagTF|hv.FlagRF) != 0 || len(c.replay) > 0 || c.intShadow || c.pendTrap ||
		c.pendWatch != 0 || c.watchHit != 0 || c.heldStep || c.heldWatch != 0 ||
		c.dbg.Flags&(hv.DebugEnable|hv.DebugSingleStep) == hv.DebugEnable|hv.DebugSingleStep ||
		c.injectVec >= 0 || c.interruptible()
	c.slow = slow
	if set := c.attn.Load()&attnSlow != 0; set != slow {
		if slow {
			c.attn.Or(attnSlow)
		} else {
			c.attn.And(^uint32(attnSlow))
		}
	}
}

// runLoop executes until an exit for the caller. The caller holds the
// vCPU (Run). Faults are delivered here, inside the interpreter.
func (c *cpu) runLoop() (exit hv.Exit, err error) {
	c.enter()
	defer c.leave()
	defer func() {
		if p := recover(); p != nil {
			if s, ok := p.(errorSignal); ok {
				exit, err = nil, s.err
				return
			}
			panic(p)
		}
	}()
	for {
		if e := c.takeExit(); e != nil {
			return e, nil
		}
		if c.vm.closing.Load() {
			return nil, hv.ErrVMClosed
		}
		if c.stopGen.Load() == c.runGen {
			return nil, errStopped
		}
		if c.halted {
			c.halt()
			continue
		}
		switch c.exec() {
		case stopFault:
			c.deliverFault()
		case stopRestart:
			runtime.Gosched()
		}
	}
}

// halt waits, outside the interpreter, until an interrupt can be
// delivered (HLT with an irqchip: KVM blocks the vCPU in the kernel the
// same way), or until Run is stopped or the VM closes.
func (c *cpu) halt() {
	c.leave()
	defer c.enter()
	for {
		if c.wakeable() {
			c.halted = false
			c.updateSlow()
			return
		}
		if c.stopGen.Load() == c.runGen || c.vm.closing.Load() {
			return
		}
		<-c.wake
	}
}

// wakeUp gets a vCPU out of HLT to look at its state.
func (c *cpu) wakeUp() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// describeInsn names the instruction at rip for an internal error: its
// bytes and mnemonic when its page is in the code TLB (it always is for an
// instruction that was executing), else why not. It has no side effects:
// no page walk, no fault.
func (c *cpu) describeInsn(rip uint64) string {
	ce := &c.ctlb[(rip>>12)%ctlbSize]
	if ce.vpn != rip>>12 || ce.perm == 0 || ce.cp == nil || ce.cp.host == nil {
		return "instruction bytes not fetched"
	}
	var buf [15]byte
	n := copy(buf[:], ce.cp.host[rip&0xfff:])
	xi, err := x86asm.Decode(buf[:n], 64)
	if err != nil {
		return fmt.Sprintf("% x: undecodable: %v", buf[:n], err)
	}
	return fmt.Sprintf("% x: %s", buf[:xi.Len], x86asm.IntelSyntax(xi, rip, nil))
}
