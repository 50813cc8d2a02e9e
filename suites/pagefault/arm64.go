package pagefault

// The page-fault area's arm64 specs, in the shape of the kernel's
// arm64/page_fault_test: one test-data page in its own memslot (or in
// none), mapped at stage 1 at testGVA, and one guest access per spec
// (read, write, pre-indexed load and store, instruction fetch, DC ZVA,
// CASAL, and CASALB and CASPAL beside it); the slot's
// flags and the host's actions decide the stage-2 outcome, which must
// match exactly: the value the guest sees, the MMIO exits (counted), a
// failed KVM_RUN where the syndrome is not valid, the dirty bitmap.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

func init() { framework.RegisterArch(taxonomy.PageFault, hv.ArchARM64, arm64Specs) }

const (
	a64SpecTimeout = 60 * time.Second
	// The test-data page: its own slot (64 KiB: one page of every
	// granule) at testGPA, mapped at stage 1 at testGVA (page_fault_test's
	// TEST_GVA), EL1 read/write/execute.
	a64TestGPA  = 0x4000_0000
	a64TestGVA  = 0xc000_0000
	a64SlotSize = 0x10000
	a64TestSlot = 1
	// Offsets in the page: the data the accesses touch, and a function
	// the fetch calls (MOV X0, #0x77; RET).
	a64DataOff = 0x100
	a64CodeOff = 0x800
	// What the host leaves at the data offset and what writes store.
	a64Pattern = 0x0123_4567_89ab_cdef
	a64Written = 0x600d_cafe_f00d_0001
	a64FnValue = 0x77
	// a64WrittenHi is what CASP stores into the doubleword after the data
	// offset, which holds zero before (every kind's page but the
	// pattern's doubleword is zero).
	a64WrittenHi = 0x600d_cafe_f00d_0002
)

// a64TestAttrs: EL1 read/write/execute (SCTLR.WXN is off), no EL0 access.
var a64TestAttrs = a64guest.Attrs{AP: a64guest.APEL1RW, UXN: true, SH: a64guest.InnerShareable}

// a64Fn is MOV X0, #0x77; RET.
var a64Fn = []byte{0xe0, 0x0e, 0x80, 0xd2, 0xc0, 0x03, 0x5f, 0xd6}

// a64Access is one guest access of the test page; it leaves what the
// guest sees in X1 (a read, the read-back after a write, the function's
// return value).
type a64Access struct {
	name  string
	write bool
	fetch bool
	// noSyndrome accesses (writeback addressing, DC ZVA, CAS) carry no
	// valid syndrome (ESR ISV=0): KVM cannot emulate them as MMIO.
	noSyndrome bool
	zero       bool // the write stores zeros (DC ZVA), not a64Written
	// readFirst: the access reads before it writes and a CPU reports its
	// first stage-2 fault on a missing page as a read (ESR WnR=0), which
	// KVM serves as a read before the write faults again: CAS, as on
	// page_fault_test's CPU (its uffd counts). QEMU TCG reports the write
	// (WnR=1): fixtures/hosts/qemu-tcg-arm64.json declares the cases.
	readFirst bool
	byteWide  bool // the write stores a64Written's low byte only (CASB)
	pair      bool // the write stores a64WrittenHi after a64Written (CASP)
	at        bool // AT S1E1R: a stage-1 walk, no access of the page
	emit      func(p *a64guest.Program)
}

// stored is what a completed write leaves at the data offset, which
// held old before.
func (a a64Access) stored(old uint64) uint64 {
	switch {
	case a.zero:
		return 0
	case a.byteWide:
		return old&^0xff | a64Written&0xff
	}
	return a64Written
}

// storedHi is what a completed write leaves in the doubleword after the
// data offset (zero before).
func (a a64Access) storedHi() uint64 {
	if a.pair {
		return a64WrittenHi
	}
	return 0
}

// a64CheckLSE is page_fault_test's guest_check_lse: the spec skips
// (SYNC a64SkipNoLSE) unless ID_AA64ISAR0_EL1.ATOMIC is at least 2.
func a64CheckLSE(p *a64guest.Program) {
	ok := p.NewLabel()
	p.Mrs(a64.X12, isar0EL1)
	p.Lsr(a64.X13, a64.X12, a64.Imm(a64AtomicShift))
	p.And(a64.X13, a64.X13, a64.Imm(0xf))
	p.Cmp(a64.X13, a64.Imm(a64AtomicLSE))
	p.Bcond(a64.HS, ok)
	p.Sync(a64SkipNoLSE, a64.X12)
	p.Bind(ok)
}

// a64SkipStage and a64SkipNoLSE are the SYNCs a guest sends when the CPU
// lacks what the access needs (DC ZVA is prohibited; no FEAT_LSE): the
// spec skips, with the register that says why as the argument.
const (
	a64SkipStage = 99
	a64SkipNoLSE = 98
)

// a64CASOld is the register that holds what the data offset holds before
// the access: CAS's comparand (page_fault_test compares with the zero
// its fresh page holds; here the pattern, or zero in a punched page), so
// that the compare succeeds and the CAS stores a64Written.
var a64CASOld = a64.X14

// Instructions the assembler has no method for: DC ZVA, Xt (SYS #3, C7,
// C4, #1) and AT S1E1R, Xt (SYS #0, C7, C8, #0), with Rt in bits 4:0.
const (
	a64DCZVA   = 0xd50b7420
	a64ATS1E1R = 0xd5087800
	a64DZP     = 4 // DCZID_EL0 bit: DC ZVA prohibited
	// ID_AA64ISAR0_EL1.ATOMIC (bits 23:20): 2 = FEAT_LSE (CAS and the
	// other atomics), page_fault_test's guest_check_lse.
	a64AtomicShift = 20
	a64AtomicLSE   = 2
)

var (
	dczidEL0 = a64.SysReg{Name: "DCZID_EL0", Op0: 3, Op1: 3, CRn: 0, CRm: 0, Op2: 7}
	parEL1   = mustSys("PAR_EL1")
	isar0EL1 = mustSys("ID_AA64ISAR0_EL1")
)

func mustSys(name string) a64.SysReg {
	r, ok := a64.Sys(name)
	if !ok {
		panic("pagefault: no system register " + name)
	}
	return r
}

var a64Accesses = []a64Access{
	{name: "read64", emit: func(p *a64guest.Program) {
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	{name: "ld_preidx", noSyndrome: true, emit: func(p *a64guest.Program) {
		p.Sub(a64.X12, a64.X10, a64.Imm(8))
		p.Ldr(a64.X1, a64.PreIndex(a64.X12, 8))
	}},
	{name: "write64", write: true, emit: func(p *a64guest.Program) {
		p.Str(a64.X11, a64.Ptr(a64.X10, 0))
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	{name: "st_preidx", write: true, noSyndrome: true, emit: func(p *a64guest.Program) {
		p.Sub(a64.X12, a64.X10, a64.Imm(8))
		p.Str(a64.X11, a64.PreIndex(a64.X12, 8))
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	{name: "exec", fetch: true, emit: func(p *a64guest.Program) {
		p.Mov(a64.X13, a64.Imm(a64TestGVA+a64CodeOff))
		p.Blr(a64.X13)
		p.Mov(a64.X1, a64.X0)
	}},
	// page_fault_test's guest_dc_zva (its prepare step: DCZID_EL0.DZP
	// clear); the data offset is block-aligned for every block size.
	{name: "dc_zva", write: true, noSyndrome: true, zero: true, emit: func(p *a64guest.Program) {
		ok := p.NewLabel()
		p.Mrs(a64.X12, dczidEL0)
		p.Tbz(a64.X12, a64DZP, ok)
		p.Sync(a64SkipStage, a64.X12)
		p.Bind(ok)
		p.Long(a64DCZVA | 10) // DC ZVA, X10
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	// page_fault_test's guest_cas: CASAL of the written value, compared
	// with what the page holds (its prepare step: ID_AA64ISAR0_EL1.ATOMIC
	// at least 2), then the read-back. Its first stage-2 fault on a
	// missing page is the read (readFirst): page_fault_test counts a
	// userfaultfd fault on the data page even where the write then fails
	// KVM_RUN (TEST_RO_MEMSLOT_NO_SYNDROME_AND_UFFD(guest_cas, ..., 2)).
	// Observed on KVM/arm64 6.12 under QEMU TCG ('max' CPU): the fault
	// has ESR WnR=1, the userfaultfd fault is a write and, on a read-only
	// slot, KVM_RUN fails (ENOSYS) before the data page is touched:
	// declared in fixtures/hosts/qemu-tcg-arm64.json.
	{name: "cas", write: true, noSyndrome: true, readFirst: true, emit: func(p *a64guest.Program) {
		a64CheckLSE(p)
		p.Mov(a64.X12, a64CASOld)
		p.Casal(a64.X12, a64.X11, a64.X10)
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	// guest_cas's byte and pair siblings (FEAT_LSE too): CASALB of the
	// written value's low byte, compared with the low byte of what the
	// page holds; CASPAL of (a64Written, a64WrittenHi) over the data
	// doubleword and the zero one after it (16-byte aligned), compared
	// with (what the page holds, 0). Neither has a syndrome, and both
	// read first as CAS does (QEMU TCG's WnR=1 likewise: declared).
	{name: "casb", write: true, noSyndrome: true, readFirst: true, byteWide: true, emit: func(p *a64guest.Program) {
		a64CheckLSE(p)
		p.Mov(a64.X12, a64CASOld)
		p.Casalb(a64.W12, a64.W11, a64.X10)
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
	{name: "casp", write: true, noSyndrome: true, readFirst: true, pair: true, emit: func(p *a64guest.Program) {
		a64CheckLSE(p)
		p.Mov(a64.X12, a64CASOld)
		p.Mov(a64.X13, a64.Imm(0))
		p.Mov(a64.X20, a64.X11)
		p.Mov(a64.X21, a64.Imm(a64WrittenHi))
		p.Caspal(a64.X12, a64.X13, a64.X20, a64.X21, a64.X10)
		p.Ldr(a64.X1, a64.Ptr(a64.X10, 0))
	}},
}

// a64ATAccess is page_fault_test's guest_at: AT S1E1R of the test
// address; X1 is PAR_EL1's F bit and PA (the test page's GPA when the
// walk succeeds).
var a64ATAccess = a64Access{name: "at", at: true, emit: func(p *a64guest.Program) {
	p.Long(a64ATS1E1R | 10) // AT S1E1R, X10
	p.Isb()
	p.Mrs(a64.X1, parEL1)
	p.Mov(a64.X12, a64.Imm(0x0000_ffff_ffff_f001))
	p.And(a64.X1, a64.X1, a64.X12)
}}

// a64SkipIfLacking skips the spec when the guest reported that the CPU
// lacks what the access needs.
func a64SkipIfLacking(u *guest.Ucall) {
	switch u.Stage() {
	case a64SkipStage:
		Skip(fmt.Sprintf("DC ZVA is prohibited on this vCPU (DCZID_EL0 %#x: DZP set)", u.Args[1]))
	case a64SkipNoLSE:
		Skip(fmt.Sprintf("no CAS on this vCPU: ID_AA64ISAR0_EL1.ATOMIC is %d, FEAT_LSE needs %d (ID_AA64ISAR0_EL1 %#x)", u.Args[1]>>a64AtomicShift&0xf, a64AtomicLSE, u.Args[1]))
	}
}

// a64Kind is the stage-2 situation of the test page.
type a64Kind struct {
	name  string
	flags hv.MemFlags
	slot  bool // false: no memslot at testGPA
	hole  bool // the host punches the page out before the guest runs
	need  hv.Cap
}

var a64Kinds = []a64Kind{
	{name: "plain slot", slot: true},
	{name: "read-only slot", slot: true, flags: hv.MemReadOnly, need: hv.CapReadOnlyMem},
	{name: "dirty-logged slot", slot: true, flags: hv.MemLogDirty, need: hv.CapDirtyLog},
	{name: "hole in the slot", slot: true, hole: true},
	{name: "unbacked gpa"},
}

// a64Outcome is what a (kind, access) pair must give.
type a64Outcome struct {
	skip     string // why the pair is no stage-2 outcome (no spec is declared)
	x1       uint64 // what the guest sees
	mmio     int    // MMIO exits at the test GPA
	failRun  bool   // KVM_RUN fails with ENOSYS (no syndrome to emulate)
	dirty    bool   // the test page's bit in the dirty bitmap
	hostData uint64 // the host's view of the data after the run
	hostHi   uint64 // and of the doubleword after it (CASP's high half)
}

func a64Expect(k a64Kind, a a64Access) a64Outcome {
	o := a64Outcome{x1: a64Pattern, hostData: a64Pattern}
	if a.fetch {
		o.x1 = a64FnValue
	}
	switch {
	case !k.slot:
		// No memslot: every access is an MMIO exit, and one without a
		// syndrome cannot be emulated; a fetch is an abort injected
		// into the guest, which is not this area's.
		if a.fetch {
			o.skip = "a fetch from an unbacked GPA is an instruction abort KVM injects, not a stage-2 outcome this table checks"
			return o
		}
		if a.noSyndrome {
			o.failRun = true
			return o
		}
		o.mmio = 1
		if a.write {
			// The write, then its read-back, which the host answers
			// with what it was given.
			o.mmio, o.x1 = 2, a.stored(a64Pattern)
		}
		return o
	case k.hole:
		if a.fetch {
			o.skip = "a fetch from a punched page runs zeros (UDF), not a stage-2 outcome"
			return o
		}
		o.x1, o.hostData = 0, 0
	case k.flags&hv.MemReadOnly != 0:
		if a.write && a.noSyndrome {
			o.failRun = true
			return o
		}
		if a.write {
			// page_fault_test's handler copies the data into the page.
			o.mmio = 1
		}
	}
	if a.write {
		old := uint64(a64Pattern)
		if k.hole {
			old = 0
		}
		o.x1, o.hostData, o.hostHi = a.stored(old), a.stored(old), a.storedHi()
		o.dirty = k.flags&hv.MemLogDirty != 0
	}
	return o
}

func arm64Specs(b *framework.Backend) {
	for _, k := range a64Kinds {
		for _, a := range a64Accesses {
			k, a := k, a
			want := a64Expect(k, a)
			if want.skip != "" {
				continue // not a stage-2 outcome: no spec
			}
			labels := Labels{}
			if k.need != "" {
				labels = append(labels, taxonomy.Needs(k.need)...)
			}
			It(fmt.Sprintf("%s: %s", k.name, a.name), labels, func(ctx SpecContext) {
				if k.need != "" {
					b.Require(k.need)
				}
				a64RunAccess(ctx, b, k, a, want)
			}, SpecTimeout(a64SpecTimeout))
		}
	}
	arm64S1PTWSpecs(b) // arm64_s1ptw.go
}

func a64RunAccess(ctx context.Context, b *framework.Backend, k a64Kind, a a64Access, want a64Outcome) {
	var mem *hv.Memory
	if k.slot {
		var err error
		mem, err = hv.NewMemory(a64SlotSize, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(mem.Close) // after the guest, whose cleanup comes later
		binary.LittleEndian.PutUint64(mem.Bytes()[a64DataOff:], a64Pattern)
		copy(mem.Bytes()[a64CodeOff:], a64Fn)
	}
	g := b.NewARM64Guest(a64guest.Config{})
	if k.slot {
		Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64TestSlot, GPA: a64TestGPA, Size: a64SlotSize, Flags: k.flags, Memory: mem})).To(Succeed())
	}
	Expect(g.PT.Map(a64TestGVA, a64TestGPA, a64SlotSize, a64TestAttrs)).To(Succeed())
	if k.hole {
		Expect(mem.PunchHole(0, a64SlotSize)).To(Succeed())
	}
	p := g.Program()
	p.Mov(a64.X10, a64.Imm(a64TestGVA+a64DataOff))
	p.Mov(a64.X11, a64.Imm(a64Written))
	old := uint64(a64Pattern)
	if k.hole {
		old = 0
	}
	p.Mov(a64CASOld, a64.Imm(old))
	a.emit(p)
	p.Sync(1, a64.X1)
	p.Done()
	Expect(g.Load(p)).To(Succeed())

	mmio := 0
	var seen *guest.Ucall
	for {
		ev, err := g.Run(ctx, 0)
		if want.failRun {
			Expect(err).To(HaveOccurred(), "KVM_RUN of an access without a syndrome (exit %v ucall %v)", ev.Exit, ev.Ucall)
			Expect(errors.Is(err, unix.ENOSYS)).To(BeTrue(), "want ENOSYS, got %v", err)
			return
		}
		Expect(err).NotTo(HaveOccurred())
		if m, ok := ev.Exit.(*hv.MMIOExit); ok {
			mmio++
			Expect(m.GPA).To(Equal(uint64(a64TestGPA+a64DataOff)), "MMIO exit %v", m)
			Expect(m.Len).To(Equal(8), "MMIO exit %v", m)
			// A write exits once, then its read-back reads.
			Expect(m.Write).To(Equal(a.write && mmio == 1), "MMIO exit %v", m)
			switch {
			case m.Write && k.slot:
				// page_fault_test's mmio_on_test_gpa_handler: the host
				// stores the data into the read-only page.
				Expect(m.Value()).To(Equal(uint64(a64Written)))
				binary.LittleEndian.PutUint64(mem.Bytes()[a64DataOff:], m.Value())
			case m.Write:
				Expect(m.Value()).To(Equal(uint64(a64Written)))
			default:
				// An unbacked read: the host answers, with the written
				// value after a write (a device that keeps it).
				if mmio > 1 {
					m.SetValue(a64Written)
				} else {
					m.SetValue(a64Pattern)
				}
			}
			continue
		}
		if ev.Exit != nil {
			Fail(g.Unexpected(0, ev.Exit).Error())
		}
		if ev.Ucall.Cmd == guest.UcallDone {
			break
		}
		a64SkipIfLacking(ev.Ucall)
		seen = ev.Ucall
	}
	Expect(seen).NotTo(BeNil(), "the guest's SYNC")
	Expect(seen.Args[1]).To(Equal(want.x1), "what the guest saw")
	Expect(mmio).To(Equal(want.mmio), "MMIO exits at the test GPA")
	if !k.slot {
		return
	}
	Expect(binary.LittleEndian.Uint64(mem.Bytes()[a64DataOff:])).To(Equal(want.hostData), "the host's view of the data")
	Expect(binary.LittleEndian.Uint64(mem.Bytes()[a64DataOff+8:])).To(Equal(want.hostHi), "the host's view of the doubleword after the data")
	if k.flags&hv.MemLogDirty != 0 {
		bitmap := make([]uint64, (a64SlotSize/hv.PageSize+63)/64)
		Expect(g.VM.GetDirtyLog(a64TestSlot, bitmap)).To(Succeed())
		bit := uint64(a64DataOff / hv.PageSize)
		Expect(bitmap[bit/64]>>(bit%64)&1 == 1).To(Equal(want.dirty), "the data page's dirty bit (bitmap %#x)", bitmap)
		var others uint64
		for i, w := range bitmap {
			if uint64(i) == bit/64 {
				w &^= 1 << (bit % 64)
			}
			others |= w
		}
		Expect(others).To(BeZero(), "no other page of the slot is dirty (bitmap %#x)", bitmap)
	}
}
