package pagefault

// Stage-2 faults of the stage-1 table walk (S1PTW) on arm64, in the shape
// of page_fault_test's page-table memslot: the last-level table that maps
// the test page lives in a slot of its own (a64guest.MoveLeafTable) —
// plain, read-only, dirty-logged, gone (no backing: the walk reads an
// unbacked IPA) or behind userfaultfd (alone, dirty-logged or read-only
// beside a data slot that is the same) — and the test page's Access flag
// is set, or clear with hardware AF management (TCR_EL1.HA, FEAT_HAFDBS:
// the walk writes the descriptor), or clear without it (the guest takes
// an Access flag fault), for each access of the data-page matrix and
// page_fault_test's AT S1E1R (AF set only: whether AT sets the AF is
// IMPLEMENTATION DEFINED; X1 is PAR_EL1's F and PA). The data page is
// in its own plain slot (dirty-logged beside a dirty-logged table slot,
// behind userfaultfd beside a userfaultfd one). What KVM gives, exactly:
//   - the walk's reads of a read-only slot are reads (KVM 6.2, "Fix S1PTW
//     handling on RO memslots"): the access completes;
//   - a walk that must write the AF into a read-only slot, or that reads
//     an unbacked IPA, is an abort KVM injects into the guest (a
//     synchronous external abort, FSC 0x10, FAR the accessed address: a
//     data abort, or an instruction abort for a fetch), never an MMIO exit;
//   - a dirty-logged table slot has its page dirty exactly when the walk
//     wrote the AF;
//   - userfaultfd serves exactly one fault on each slot (page_fault_test's
//     two), the walk's a read; with both slots also dirty-logged the logs
//     are as without userfaultfd; with both read-only (page_fault_test's
//     TEST_RO_MEMSLOT_AND_UFFD) a write is one MMIO exit whose handler
//     stores into the page (the data fault), and a write without a
//     syndrome fails KVM_RUN (ENOSYS) before the data page is touched
//     (after it for CAS, whose first fault is the read).
//
// Hardware dirty state (FEAT_HAFDBS with TCR_EL1.HD and HA) adds two
// rows: the test page read-only (AP[2]) with DBM set, where a write makes
// the walk clear AP[2] (writable-dirty: a stage-1 table write, so a
// stage-2 write of the table slot, exactly as the AF update) and a read
// or fetch leaves the descriptor alone; and, as a control in the plain
// slot, read-only without DBM, where a write is the guest's permission
// fault (FSC 0x0f, WnR=1: an atomic's read would not fault) and the
// descriptor stays read-only. KVM injects its external abort (a write
// into a read-only table slot, a walk of no slot) with WnR=0.

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"

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

// a64PTAP2 is a page descriptor's AP[2]: read-only at every EL.
const a64PTAP2 = uint64(a64guest.APEL1RO) << a64guest.DescAPShift

const (
	// The page-table slot: one granule of any size, below the test page.
	a64PTGPA  = 0x3ff0_0000
	a64PTSlot = 2
	// a64FSCExtAbort is the fault status code of the synchronous
	// external abort KVM injects (ESR_ELx_FSC_EXTABT).
	a64FSCExtAbort = 0x10
	// ID_AA64MMFR1_EL1.HAFDBS: 1 = hardware Access flag, 2 = and dirty state.
	a64HAFDBSMask  = 0xf
	a64HAFDBSDirty = 2
)

var idMMFR1 = a64.SysReg{Name: "ID_AA64MMFR1_EL1", Op0: 3, Op1: 0, CRn: 0, CRm: 7, Op2: 1}

// a64PTKind is where the test page's last-level table lives.
type a64PTKind struct {
	name     string
	flags    hv.MemFlags // the table slot's (the data slot logs beside a logged one)
	unbacked bool        // the slot is deleted before the run
	uffd     bool        // both slots are punched and served by userfaultfd
	dataRO   bool        // the data slot is read-only too
	need     hv.Cap
}

var a64PTKinds = []a64PTKind{
	{name: "page tables in a plain slot"},
	{name: "page tables in a read-only slot", flags: hv.MemReadOnly, need: hv.CapReadOnlyMem},
	{name: "page tables in a dirty-logged slot", flags: hv.MemLogDirty, need: hv.CapDirtyLog},
	{name: "page tables in no slot (unbacked)", unbacked: true},
	{name: "page tables and data behind userfaultfd", uffd: true, need: hv.CapUserfault},
	{name: "page tables and data dirty-logged and behind userfaultfd", flags: hv.MemLogDirty, uffd: true, need: hv.CapUserfault},
	{name: "page tables and data read-only and behind userfaultfd", flags: hv.MemReadOnly, uffd: true, dataRO: true, need: hv.CapUserfault},
}

// a64AF is the test page's Access flag and its management.
type a64AF int

const (
	afSet   a64AF = iota // AF set: the walk only reads
	afHW                 // AF clear, TCR_EL1.HA: the walk sets it
	afFault              // AF clear, no HA: an Access flag fault
	// AF set, the page read-only with DBM, TCR_EL1.HA and HD: a write
	// makes the walk clear AP[2].
	dbmHW
	// AF set, the page read-only without DBM, TCR_EL1.HA and HD: a write
	// is a permission fault.
	dbmOff
)

var a64AFs = []a64AF{afSet, afHW, afFault, dbmHW, dbmOff}

var a64AFNames = map[a64AF]string{afSet: "AF set", afHW: "AF clear with hardware AF update", afFault: "AF clear without hardware AF update",
	dbmHW: "read-only with DBM and hardware dirty state update", dbmOff: "read-only without DBM, hardware dirty state on"}

// dirtyState reports whether the row runs with TCR_EL1.HD (and HA).
func (af a64AF) dirtyState() bool { return af == dbmHW || af == dbmOff }

// a64WnR is the ESR's WnR bit a row expects of the guest's abort.
type a64WnR uint8

const (
	wnrUnchecked a64WnR = iota
	wnrRead
	wnrWrite
)

// a64PTOutcome is what a (table kind, AF, access) case must give.
type a64PTOutcome struct {
	skip       string // no spec: not a case of this matrix
	x1         uint64 // what the guest sees when the access completes
	ec, fsc    uint32 // the exception the guest takes instead (ec 0: none)
	far        uint64
	wnr        a64WnR // the abort's ESR WnR (checked in the dirty-state rows)
	afAfter    bool   // the descriptor's AF after the run (checked where the table is backed)
	roAfter    bool   // and its AP[2] (read-only)
	ptDirty    bool
	dataDirty  bool
	ptFaults   int // userfaultfd faults on each slot
	dataFaults int
	hostData   uint64
	hostHi     uint64 // the doubleword after the data (CASP's high half)
	mmio       int    // MMIO exits at the test GPA (a write to the read-only data slot)
	failRun    bool   // KVM_RUN fails with ENOSYS (a write without syndrome to the read-only data slot)
}

func a64PTExpect(k a64PTKind, af a64AF, a a64Access) a64PTOutcome {
	switch {
	case af == afFault && k.name != a64PTKinds[0].name:
		return a64PTOutcome{skip: "the Access flag fault is the guest's own: one table kind shows it"}
	case af == dbmOff && k.name != a64PTKinds[0].name:
		return a64PTOutcome{skip: "the permission fault is the guest's own: one table kind shows it"}
	case k.unbacked && (af == afHW || af == afFault):
		return a64PTOutcome{skip: "an unbacked table has no descriptor to update"}
	case a.at && af.dirtyState():
		return a64PTOutcome{skip: "AT S1E1R is a read, which never updates the dirty state: the rows' reads are read64, ld_preidx and exec"}
	case a.at && af != afSet:
		return a64PTOutcome{skip: "whether AT updates the Access flag is IMPLEMENTATION DEFINED (page_fault_test leaves it out)"}
	}
	o := a64PTOutcome{x1: a64Pattern, hostData: a64Pattern, afAfter: true, roAfter: af.dirtyState()}
	switch {
	case a.fetch:
		o.x1 = a64FnValue
	case a.at:
		o.x1 = a64TestGPA // PAR_EL1: F clear, the page's PA
	case a.write:
		o.x1, o.hostData, o.hostHi = a.stored(a64Pattern), a.stored(a64Pattern), a.storedHi()
	}
	abort := func(fsc uint32) {
		o.x1, o.hostData, o.hostHi, o.fsc = 0, a64Pattern, 0, fsc
		o.ec, o.far = a64guest.ECDABTCurrent, a64TestGVA+a64DataOff
		if a.fetch {
			o.ec, o.far = a64guest.ECIABTCurrent, a64TestGVA+a64CodeOff
		}
	}
	// The walk writes the descriptor: the AF, or AP[2] for a write.
	walkWrites := af == afHW || af == dbmHW && a.write
	switch {
	case af == afFault:
		abort((&a64guest.Fault{Kind: a64guest.FaultAccessFlag, Level: 3}).FSC())
		o.afAfter = false
	case k.unbacked, k.flags&hv.MemReadOnly != 0 && walkWrites:
		abort(a64FSCExtAbort)
		if k.unbacked || af == afHW {
			o.afAfter = false // no table to read back, or no AF written
		}
		if k.unbacked {
			o.roAfter = false
		}
		if af.dirtyState() {
			o.wnr = wnrRead // KVM's injected abort carries no WnR
		}
	case af == dbmOff && a.write:
		abort((&a64guest.Fault{Kind: a64guest.FaultPermission, Level: 3}).FSC())
		o.wnr = wnrWrite
	case af == dbmHW && a.write:
		o.roAfter = false // writable-dirty
	}
	if k.flags&hv.MemLogDirty != 0 {
		o.ptDirty = walkWrites
		o.dataDirty = a.write
	}
	if k.uffd {
		o.ptFaults, o.dataFaults = 1, 1
		if o.ec != 0 || a.at {
			o.dataFaults = 0 // the walk failed, or AT reads no data
		}
	}
	if k.dataRO && o.ec == 0 && a.write {
		// page_fault_test's TEST_RO_MEMSLOT_AND_UFFD: a write with a
		// syndrome is one MMIO exit, whose handler stores the value
		// into the page (the data fault); one without fails KVM_RUN
		// before the data page is touched, unless its first fault is
		// the read (readFirst: CAS), which userfaultfd serves first.
		if a.noSyndrome {
			o.failRun, o.dataFaults = true, 0
			o.x1, o.hostData, o.hostHi = 0, a64Pattern, 0
			if a.readFirst {
				o.dataFaults = 1
			}
		} else {
			o.mmio = 1
		}
	}
	return o
}

func arm64S1PTWSpecs(b *framework.Backend) {
	for _, k := range a64PTKinds {
		for _, af := range a64AFs {
			for _, a := range append(a64Accesses, a64ATAccess) {
				want := a64PTExpect(k, af, a)
				if want.skip != "" {
					continue
				}
				labels := Labels{}
				if k.need != "" {
					labels = append(labels, taxonomy.Needs(k.need)...)
				}
				It(fmt.Sprintf("%s, %s: %s", k.name, a64AFNames[af], a.name), labels, func(ctx SpecContext) {
					if k.need != "" {
						b.Require(k.need)
					}
					a64RunS1PTW(ctx, b, k, af, a, want)
				}, SpecTimeout(a64SpecTimeout))
			}
		}
	}
}

// a64Uffd serves a slot's punched pages from the copy saved before the
// hole and records each fault.
type a64Uffd struct {
	mu     sync.Mutex
	faults map[uint32][]hv.Fault
}

func (u *a64Uffd) handler(slot uint32, base uint64, saved []byte) hv.MissingPageHandler {
	return func(f hv.Fault, page []byte) error {
		u.mu.Lock()
		u.faults[slot] = append(u.faults[slot], f)
		u.mu.Unlock()
		if f.Slot != slot || f.GPA < base || f.GPA-base >= uint64(len(saved)) || f.GPA%hv.PageSize != 0 {
			return fmt.Errorf("fault %+v: not a page of slot %d [%#x, +%#x)", f, slot, base, len(saved))
		}
		copy(page, saved[f.GPA-base:])
		return nil
	}
}

func (u *a64Uffd) count(slot uint32) []hv.Fault {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]hv.Fault(nil), u.faults[slot]...)
}

func a64RunS1PTW(ctx context.Context, b *framework.Backend, k a64PTKind, af a64AF, a a64Access, want a64PTOutcome) {
	newMem := func() *hv.Memory {
		m, err := hv.NewMemory(a64SlotSize, hv.Anonymous)
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(m.Close) // after the guest, whose cleanup comes later
		return m
	}
	data, pt := newMem(), newMem()
	binary.LittleEndian.PutUint64(data.Bytes()[a64DataOff:], a64Pattern)
	copy(data.Bytes()[a64CodeOff:], a64Fn)

	g := b.NewARM64Guest(a64guest.Config{HA: af == afHW || af.dirtyState(), HD: af.dirtyState()})
	if af == afHW || af.dirtyState() {
		mmfr1, err := g.Reg(0).GetOneReg(a64guest.RegSys(idMMFR1))
		Expect(err).NotTo(HaveOccurred())
		if mmfr1&a64HAFDBSMask == 0 {
			Skip(fmt.Sprintf("no hardware Access flag update: the vCPU's ID_AA64MMFR1_EL1.HAFDBS is 0 (ID_AA64MMFR1_EL1 %#x)", mmfr1))
		}
		if af.dirtyState() && mmfr1&a64HAFDBSMask < a64HAFDBSDirty {
			Skip(fmt.Sprintf("no hardware dirty state management: the vCPU's ID_AA64MMFR1_EL1.HAFDBS is %d, FEAT_HAFDBS dirty state needs %d (ID_AA64MMFR1_EL1 %#x)",
				mmfr1&a64HAFDBSMask, a64HAFDBSDirty, mmfr1))
		}
	}
	dataFlags := k.flags & hv.MemLogDirty
	if k.dataRO {
		dataFlags |= hv.MemReadOnly
	}
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: a64TestSlot, GPA: a64TestGPA, Size: a64SlotSize, Flags: dataFlags, Memory: data})).To(Succeed())
	Expect(g.PT.Map(a64TestGVA, a64TestGPA, a64SlotSize, a64TestAttrs)).To(Succeed())
	ptSlot := hv.Memslot{Slot: a64PTSlot, GPA: a64PTGPA, Size: a64SlotSize, Memory: pt}
	Expect(g.VM.SetMemslot(ptSlot)).To(Succeed())
	entry, err := g.PT.MoveLeafTable(a64TestGVA, a64PTGPA)
	Expect(err).NotTo(HaveOccurred())
	Expect(entry-a64PTGPA).To(BeNumerically("<", hv.PageSize), "the descriptor is in the slot's first page")
	if af == afHW || af == afFault {
		Expect(g.PT.ClearAccessFlag(a64TestGVA)).To(Succeed())
	}
	if af.dirtyState() {
		ro := a64TestAttrs
		ro.AP, ro.DBM = a64guest.APEL1RO, af == dbmHW
		Expect(g.PT.Protect(a64TestGVA, a64SlotSize, ro)).To(Succeed())
	}
	before, ok, err := g.PT.Leaf(a64TestGVA)
	Expect(err).NotTo(HaveOccurred())
	Expect(ok).To(BeTrue())

	By("giving the table slot its kind: " + k.name)
	uf := &a64Uffd{faults: map[uint32][]hv.Fault{}}
	switch {
	case k.unbacked:
		Expect(g.VM.DeleteMemslot(a64PTSlot)).To(Succeed())
	case k.flags&hv.MemReadOnly != 0:
		Expect(g.VM.DeleteMemslot(a64PTSlot)).To(Succeed())
		ptSlot.Flags = hv.MemReadOnly
		Expect(g.VM.SetMemslot(ptSlot)).To(Succeed())
	case k.flags&hv.MemLogDirty != 0:
		ptSlot.Flags = hv.MemLogDirty
		Expect(g.VM.SetMemslot(ptSlot)).To(Succeed())
		// Start from clean logs: the host's own writes are no S1PTW.
		for _, s := range []uint32{a64TestSlot, a64PTSlot} {
			Expect(g.VM.GetDirtyLog(s, make([]uint64, 1))).To(Succeed())
		}
	}
	if k.uffd {
		for _, s := range []struct {
			slot uint32
			gpa  uint64
			mem  *hv.Memory
		}{{a64TestSlot, a64TestGPA, data}, {a64PTSlot, a64PTGPA, pt}} {
			saved := append([]byte(nil), s.mem.Bytes()...)
			Expect(s.mem.PunchHole(0, a64SlotSize)).To(Succeed())
			Expect(g.VM.SetMissingPageHandler(s.slot, uf.handler(s.slot, s.gpa, saved))).To(Succeed())
		}
		DeferCleanup(func() {
			for _, s := range []uint32{a64TestSlot, a64PTSlot} {
				Expect(g.VM.SetMissingPageHandler(s, nil)).To(Succeed(), "the slot %d handler", s)
			}
		})
	}

	p := g.Program()
	p.Mov(a64.X10, a64.Imm(a64TestGVA+a64DataOff))
	p.Mov(a64.X11, a64.Imm(a64Written))
	p.Mov(a64CASOld, a64.Imm(a64Pattern))
	p.Mov(a64.X1, a64.Imm(0))
	p.Mov(a64.X2, a64.Imm(0))
	p.Mov(a64.X3, a64.Imm(0))
	fault, done := p.NewLabel(), p.NewLabel()
	p.ExpectException(fault)
	a.emit(p)
	p.Str(a64.XZR, a64.Ptr(a64.X28, a64guest.ExcFixup))
	p.B(done)
	p.Bind(fault)
	p.Mov(a64.X1, a64.Imm(0))
	p.Ldr(a64.X2, a64.Ptr(a64.X28, a64guest.ExcESR))
	p.Ldr(a64.X3, a64.Ptr(a64.X28, a64guest.ExcFAR))
	p.Bind(done)
	p.Sync(1, a64.X1, a64.X2, a64.X3)
	p.Done()
	Expect(g.Load(p)).To(Succeed())
	got, mmio, runErr := a64RunPT(ctx, g, data)
	if k.uffd {
		// Before the host reads the data page itself below.
		pf, df := uf.count(a64PTSlot), uf.count(a64TestSlot)
		AddReportEntry("userfaultfd faults (table, data)", fmt.Sprint(pf, df))
		Expect(pf).To(HaveLen(want.ptFaults), "userfaultfd faults on the table slot: %v", pf)
		Expect(df).To(HaveLen(want.dataFaults), "userfaultfd faults on the data slot: %v", df)
		Expect(pf[0].Write).To(BeFalse(), "the walk's fault on the table is a read (KVM 6.2: an S1PTW translation fault is no write): %v", pf)
		Expect(pf[0].GPA).To(Equal(uint64(a64PTGPA)), "the table page")
		if len(df) > 0 {
			Expect(df[0].GPA).To(Equal(uint64(a64TestGPA)), "the data page")
			Expect(df[0].Write).To(Equal(a.write && !a.readFirst), "the data fault is a write exactly for a write access that does not read first: %v", df)
		}
	}
	Expect(mmio).To(Equal(want.mmio), "MMIO exits at the test GPA")
	if want.failRun {
		Expect(runErr).To(MatchError(unix.ENOSYS), "KVM_RUN of a write without a syndrome to the read-only data slot")
		return
	}
	Expect(runErr).NotTo(HaveOccurred(), "the run: no exit but the ucalls and the expected MMIO exits")
	Expect(got).To(HaveLen(3))
	x := a64guest.Exception{ESR: got[1], FAR: got[2]}
	AddReportEntry("guest X1, ESR, FAR", got)
	Expect(x.EC()).To(Equal(want.ec), "the exception class the guest took (0: none), ESR %#x", x.ESR)
	if want.ec != 0 {
		Expect(x.FSC()).To(Equal(want.fsc), "the fault status code, ESR %#x", x.ESR)
		Expect(x.FAR).To(Equal(want.far), "FAR_EL1")
		if want.wnr != wnrUnchecked {
			Expect(x.ESR&a64guest.ESRWnR != 0).To(Equal(want.wnr == wnrWrite), "ESR WnR, ESR %#x", x.ESR)
		}
	}
	Expect(got[0]).To(Equal(want.x1), "what the guest saw")

	Expect(binary.LittleEndian.Uint64(data.Bytes()[a64DataOff:])).To(Equal(want.hostData), "the host's view of the data")
	Expect(binary.LittleEndian.Uint64(data.Bytes()[a64DataOff+8:])).To(Equal(want.hostHi), "the host's view of the doubleword after the data")
	if !k.unbacked {
		s, ok, err := g.PT.Leaf(a64TestGVA)
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeTrue())
		Expect(s.EntryGPA).To(Equal(entry))
		AddReportEntry("the test page's descriptor before and after the run", fmt.Sprintf("%#x %#x", before.Desc, s.Desc))
		Expect(s.Desc&a64guest.DescAF != 0).To(Equal(want.afAfter), "the test page's Access flag after the run (descriptor %#x)", s.Desc)
		Expect(s.Desc&a64PTAP2 != 0).To(Equal(want.roAfter), "the test page's AP[2] (read-only) after the run (descriptor %#x, before %#x)", s.Desc, before.Desc)
		Expect(s.Desc&^(a64guest.DescAF|a64PTAP2)).To(Equal(before.Desc&^(a64guest.DescAF|a64PTAP2)), "the descriptor's other bits (DBM among them) are the host's (after %#x, before %#x)", s.Desc, before.Desc)
	}
	if k.flags&hv.MemLogDirty != 0 {
		for _, c := range []struct {
			slot uint32
			name string
			want bool
		}{{a64PTSlot, "table", want.ptDirty}, {a64TestSlot, "data", want.dataDirty}} {
			bitmap := make([]uint64, (a64SlotSize/hv.PageSize+63)/64)
			Expect(g.VM.GetDirtyLog(c.slot, bitmap)).To(Succeed())
			wantBits := uint64(0)
			if c.want {
				wantBits = 1 // the first page of the slot: the table's, the data's
			}
			Expect(bitmap[0]).To(Equal(wantBits), "the %s slot's dirty bitmap", c.name)
		}
	}
}

// a64RunPT runs the S1PTW program to DONE: its SYNC's values, the MMIO
// exits at the test GPA (writes to the read-only data slot, whose value
// the host stores into the page as page_fault_test's handler does), and
// the error that ended the run, if any.
func a64RunPT(ctx context.Context, g *a64guest.Guest, data *hv.Memory) ([]uint64, int, error) {
	var got []uint64
	mmio := 0
	for {
		ev, err := g.Run(ctx, 0)
		if err != nil {
			return got, mmio, err
		}
		if m, ok := ev.Exit.(*hv.MMIOExit); ok && m.Write && m.GPA == a64TestGPA+a64DataOff && m.Len == 8 {
			mmio++
			binary.LittleEndian.PutUint64(data.Bytes()[a64DataOff:], m.Value())
			continue
		}
		if ev.Exit != nil {
			return got, mmio, g.Unexpected(0, ev.Exit)
		}
		switch ev.Ucall.Cmd {
		case guest.UcallDone:
			return got, mmio, nil
		case guest.UcallSync:
			a64SkipIfLacking(ev.Ucall)
			got = append([]uint64(nil), ev.Ucall.Args[1:]...)
		}
	}
}
