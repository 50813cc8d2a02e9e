package pagefault

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The test layout: the data page and the page-table page that maps it live
// in slots of their own, so each gets its own flags, holes and handler, as
// in the kernel's page_fault_test (TEST_DATA and PAGE_TABLE memslots).
const (
	dataSlot  = 1
	dataGPA   = 0x4000_0000
	dataPages = 2
	gapGPA    = 0x4008_0000 // unbacked: between the data and page-table slots
	ptSlot    = 2
	ptGPA     = 0x4010_0000
	aboveGPA  = 0x5000_0000 // unbacked: above the last slot

	// testGVA's 2 MiB region is translated by the page-table page at
	// ptGPA: its PTE index 0 maps the data page, gapIndex and aboveIndex
	// the unbacked pages.
	testGVA    = 0xc000_0000
	gapIndex   = 16
	aboveIndex = 17
	// aliasGVA maps the page-table page read-only for the guest, which
	// reads its own PTE through it (the kernel's TEST_PTE_GVA).
	aliasGVA = 0xb000_0000

	codeOff = 0x800 // the exec case's code inside the test page
)

// Values the guest and the host exchange.
const (
	dataInit  = 0x1111_2222_3333_4444 // the data page's first quadword
	mmioValue = 0xfeed_face_cafe_beef // what the host answers MMIO reads with
	execValue = 0x77                  // what the code in the page returns
)

func writeValue(pass int) uint64   { return 0x7700_0000_0000_0000 | uint64(pass) }
func cmpxchgValue(pass int) uint64 { return 0x6600_0000_0000_0000 | uint64(pass) }
func stosValue(pass int) uint64    { return 0x5500_0000_0000_0000 | uint64(pass) }

// pageCode is the exec case's function: mov eax, 0x77; ret.
var pageCode = []byte{0xb8, execValue, 0, 0, 0, 0xc3}

// passes: every access runs twice, the second time on pages the first
// brought in, so demand-paging faults must not repeat.
const passes = 2

func (x desc) gva() uint64 {
	switch x.target {
	case inGap:
		return testGVA + gapIndex*hv.PageSize
	case above:
		return testGVA + aboveIndex*hv.PageSize
	}
	return testGVA
}

func (x desc) gpa() uint64 {
	switch x.target {
	case inGap:
		return gapGPA
	case above:
		return aboveGPA
	}
	return dataGPA
}

func (x desc) pteIndex() uint64 { return (x.gva() - testGVA) / hv.PageSize }

// readOnlyData: the access lands on a read-only data slot.
func (x desc) readOnlyData() bool { return x.target == onData && x.dataFlags&hv.MemReadOnly != 0 }

// writable: stores reach guest memory.
func (x desc) writable() bool { return x.target == onData && !x.readOnlyData() }

// contents is the data page's first quadword as the guest reads it first.
func (x desc) contents() uint64 {
	switch {
	case x.target != onData:
		return mmioValue
	case x.prep&holeData != 0 && x.paging&pageData == 0:
		return 0
	}
	return dataInit
}

// mmioAccess is one MMIO exit.
type mmioAccess struct {
	GPA   uint64
	Len   int
	Write bool
	Value uint64
}

func (m mmioAccess) String() string {
	return fmt.Sprintf("{gpa %#x len %d write %v value %#x}", m.GPA, m.Len, m.Write, m.Value)
}

// mmioExits is what pass must produce as MMIO exits: stores to read-only
// memory, and every data access to unbacked memory.
func (x desc) mmioExits(pass int) []mmioAccess {
	unbacked := x.target != onData
	if (!unbacked && !x.readOnlyData()) || x.pte != pteOK {
		return nil
	}
	gpa := x.gpa()
	switch x.access {
	case read, readPTE:
		if unbacked {
			return []mmioAccess{{gpa, 8, false, 0}}
		}
	case write:
		return []mmioAccess{{gpa, 8, true, writeValue(pass)}}
	case cmpxchg:
		var out []mmioAccess
		if unbacked {
			// The emulator reads the operand, then stores.
			out = append(out, mmioAccess{gpa, 8, false, 0})
		}
		return append(out, mmioAccess{gpa, 8, true, cmpxchgValue(pass)})
	case repStos:
		var out []mmioAccess
		for i := 0; i < stosCount; i++ {
			out = append(out, mmioAccess{gpa + 8*uint64(i), 8, true, stosValue(pass)})
		}
		return out
	}
	return nil
}

// pfError is the #PF error code the case's fault pushes.
func (x desc) pfError(mode guest.Mode) uint64 {
	var e uint64
	// A zero PTE read from an unserved hole in the page-table page is as
	// not-present as a cleared P bit.
	notPresent := x.pte == pteNotPresent || x.prep&holePT != 0 && x.paging&pagePT == 0
	if !notPresent {
		e |= 1 // P: a protection violation on a present page
	}
	if x.access.writes() {
		e |= 2
	}
	if mode == guest.CPL3 {
		e |= 4
	}
	if x.access == exec {
		e |= 0x10 // I/D: an instruction fetch (EFER.NXE is on)
	}
	return e
}

// faultAddr is the linear address the access faults on (CR2).
func (x desc) faultAddr() uint64 {
	if x.access == exec {
		return x.gva() + codeOff
	}
	return x.gva()
}

// outcome is what one run of a descriptor produced.
type outcome struct {
	counts
	perPass              [passes + 1]counts // counts when each pass's SYNC arrived
	results              [passes + 1][2]uint64
	synced               int
	mmio                 []mmioAccess
	dataFaults, ptFaults []hv.Fault
	runErr               error
}

// bed is one descriptor's guest and slots.
type bed struct {
	x       desc
	mode    guest.Mode
	g       *guest.Guest
	data    *hv.Memory
	pt      *hv.Memory
	savedDT []byte
	savedPT []byte

	mu                   sync.Mutex
	dataFaults, ptFaults []hv.Fault
}

// newBed builds the guest, the two slots, the mappings, the holes and the
// handlers of x.
func newBed(b *framework.Backend, mode guest.Mode, x desc) *bed {
	GinkgoHelper()
	backing := hv.Anonymous
	if x.prep&memfd != 0 {
		b.Require(hv.CapMemfd)
		backing = hv.Memfd
	}
	bd := &bed{x: x, mode: mode}
	var err error
	// The slots' memory outlives the VM: its cleanup is registered first,
	// so it runs after NewGuest's.
	bd.data, err = hv.NewMemory(dataPages*hv.PageSize, backing)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(bd.data.Close)
	bd.pt, err = hv.NewMemory(hv.PageSize, hv.Anonymous)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(bd.pt.Close)
	bd.g = b.NewGuest(guest.Config{Mode: mode})
	g := bd.g

	By(fmt.Sprintf("data slot %d at %#x (%s, %s), page-table slot %d at %#x (%s)", dataSlot, dataGPA, x.dataFlags, backing, ptSlot, ptGPA, x.ptFlags))
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: dataSlot, GPA: dataGPA, Size: bd.data.Size(), Flags: x.dataFlags, Memory: bd.data})).To(Succeed())
	Expect(g.VM.SetMemslot(hv.Memslot{Slot: ptSlot, GPA: ptGPA, Size: bd.pt.Size(), Flags: x.ptFlags, Memory: bd.pt})).To(Succeed())

	page := bd.data.Bytes()[:hv.PageSize]
	binary.LittleEndian.PutUint64(page, dataInit)
	copy(page[codeOff:], pageCode)

	// Let the guest's tables create the upper levels for testGVA, then
	// point its page-directory entry at the page-table page in ptSlot.
	user := uint64(guest.PTEWrite | guest.PTEUser | guest.PTEAccessed | guest.PTEDirty)
	Expect(g.PT.MapPage(testGVA, dataGPA, guest.Page4K, user)).To(Succeed())
	steps, err := g.PT.Walk(testGVA)
	Expect(err).NotTo(HaveOccurred())
	Expect(steps).To(HaveLen(4), "walk of %#x", uint64(testGVA))
	Expect(g.Write64(steps[2].EntryGPA, ptGPA|guest.PTEPresent|user)).To(Succeed())
	ptPage := bd.pt.Bytes()
	le := binary.LittleEndian
	le.PutUint64(ptPage[0:], dataGPA|guest.PTEPresent|user)
	le.PutUint64(ptPage[8*gapIndex:], gapGPA|guest.PTEPresent|user)
	le.PutUint64(ptPage[8*aboveIndex:], aboveGPA|guest.PTEPresent|user)
	e := le.Uint64(ptPage[8*x.pteIndex():])
	if x.prep&clearAD != 0 {
		e &^= guest.PTEAccessed | guest.PTEDirty
	}
	switch x.pte {
	case pteNotPresent:
		e &^= guest.PTEPresent
	case pteReadOnly:
		e &^= guest.PTEWrite
	case pteSupervisor:
		e &^= guest.PTEUser
	case pteNX:
		e |= guest.PTENX
	}
	le.PutUint64(ptPage[8*x.pteIndex():], e)
	Expect(g.PT.MapPage(aliasGVA, ptGPA, guest.Page4K, guest.PTEUser|guest.PTEAccessed)).To(Succeed())
	bd.savedDT = append([]byte(nil), bd.data.Bytes()...)
	bd.savedPT = append([]byte(nil), ptPage...)

	if x.prep&holeData != 0 {
		By("punching a hole in the data page")
		Expect(bd.data.PunchHole(0, hv.PageSize)).To(Succeed())
		res, err := bd.data.Resident(0, hv.PageSize)
		Expect(err).NotTo(HaveOccurred())
		Expect(res[0]).To(BeFalse(), "data page resident after the hole")
	}
	if x.prep&holePT != 0 {
		By("punching a hole in the page-table page")
		Expect(bd.pt.PunchHole(0, hv.PageSize)).To(Succeed())
	}
	// Handlers after the holes: a backend may decide at registration
	// which pages are missing.
	if x.paging&pageData != 0 {
		b.Require(hv.CapUserfault)
		Expect(g.VM.SetMissingPageHandler(dataSlot, bd.handler(dataSlot, dataGPA, bd.savedDT, &bd.dataFaults))).To(Succeed())
	}
	if x.paging&pagePT != 0 {
		b.Require(hv.CapUserfault)
		Expect(g.VM.SetMissingPageHandler(ptSlot, bd.handler(ptSlot, ptGPA, bd.savedPT, &bd.ptFaults))).To(Succeed())
	}
	return bd
}

// handler serves a slot from the copy saved before the holes, as the
// kernel test's uffd handlers do, and records each fault.
func (bd *bed) handler(slot uint32, base uint64, saved []byte, log *[]hv.Fault) hv.MissingPageHandler {
	return func(f hv.Fault, page []byte) error {
		bd.mu.Lock()
		*log = append(*log, f)
		bd.mu.Unlock()
		if f.Slot != slot || f.GPA < base || f.GPA-base >= uint64(len(saved)) || f.GPA%hv.PageSize != 0 {
			return fmt.Errorf("fault %+v: not a page of slot %d [%#x, +%#x)", f, slot, base, len(saved))
		}
		copy(page, saved[f.GPA-base:f.GPA-base+hv.PageSize])
		return nil
	}
}

func (bd *bed) faultCount() int {
	bd.mu.Lock()
	defer bd.mu.Unlock()
	return len(bd.dataFaults) + len(bd.ptFaults)
}

// program emits the case's access twice, each pass ending with a SYNC of
// the pass number, RAX and RDX.
func (bd *bed) program() *guest.Program {
	x := bd.x
	p := bd.g.Program()
	for pass := 1; pass <= passes; pass++ {
		fix := p.NewLabel()
		if x.want.Exceptions > 0 {
			p.ExpectException(fix)
		}
		p.Mov(asm.R12, asm.RSP) // a fault inside `call` leaves the return address pushed
		p.Xor(asm.EAX, asm.EAX)
		p.Xor(asm.EDX, asm.EDX)
		p.MovAbs(asm.RBX, x.gva())
		switch x.access {
		case read:
			p.Mov(asm.RAX, asm.Q(asm.RBX, 0))
		case write:
			p.MovAbs(asm.RAX, writeValue(pass))
			p.Mov(asm.Q(asm.RBX, 0), asm.RAX)
		case exec:
			p.Lea(asm.RAX, asm.Q(asm.RBX, codeOff))
			p.CallInd(asm.RAX)
		case cmpxchg:
			old := x.contents()
			if pass > 1 && x.writable() {
				old = cmpxchgValue(pass - 1)
			}
			p.MovAbs(asm.RAX, old)
			p.MovAbs(asm.RCX, cmpxchgValue(pass))
			p.Lock().Cmpxchg(asm.Q(asm.RBX, 0), asm.RCX)
			p.Setcc(asm.CondE, asm.DL)
		case repStos:
			p.Mov(asm.RDI, asm.RBX)
			p.Mov(asm.ECX, asm.Imm(stosCount))
			p.MovAbs(asm.RAX, stosValue(pass))
			p.Cld()
			p.RepStosq()
		case readPTE:
			p.Mov(asm.RAX, asm.Q(asm.RBX, 0))
			p.MovAbs(asm.RCX, aliasGVA+8*x.pteIndex())
			p.Mov(asm.RDX, asm.Q(asm.RCX, 0))
		}
		p.Bind(fix)
		p.Mov(asm.RSP, asm.R12)
		p.Sync(int64(pass), asm.RAX, asm.RDX)
	}
	p.Done()
	return p
}

// run runs the guest to DONE or to its first failed run, answering MMIO
// reads, and counts what happened.
func (bd *bed) run(ctx context.Context) outcome {
	GinkgoHelper()
	var o outcome
	g := bd.g
	Expect(g.Load(bd.program())).To(Succeed())
	snapshot := func() counts {
		c := o.counts
		c.Faults = bd.faultCount()
		_, n, err := g.LastException(0)
		Expect(err).NotTo(HaveOccurred())
		c.Exceptions = int(n)
		return c
	}
	for {
		ev, err := g.Run(ctx, 0)
		if err != nil {
			var ae *guest.AssertError
			var xe *guest.ExceptionError
			var te *guest.TimeoutError
			if errors.As(err, &ae) || errors.As(err, &xe) || errors.As(err, &te) {
				Fail(fmt.Sprintf("%s: %v", bd.x.name, err))
			}
			o.FailedRuns++
			o.runErr = err
			break
		}
		if ev.Exit != nil {
			if m, ok := ev.Exit.(*hv.MMIOExit); ok {
				o.MMIO++
				a := mmioAccess{GPA: m.GPA, Len: m.Len, Write: m.Write}
				if m.Write {
					a.Value = m.Value()
				} else {
					m.SetValue(mmioValue)
				}
				o.mmio = append(o.mmio, a)
				continue
			}
			switch ev.Exit.Kind() {
			case hv.ExitInternalError, hv.ExitFailEntry, hv.ExitShutdown:
				o.FailedRuns++
				o.runErr = fmt.Errorf("exit %v", ev.Exit)
			default:
				Fail(fmt.Sprintf("%s: %v", bd.x.name, g.Unexpected(0, ev.Exit)))
			}
			break
		}
		if ev.Ucall.Cmd == guest.UcallDone {
			break
		}
		pass := int(ev.Ucall.Stage())
		Expect(pass).To(Equal(o.synced+1), "SYNC order")
		Expect(ev.Ucall.Args).To(HaveLen(3))
		o.synced = pass
		o.perPass[pass] = snapshot()
		o.results[pass] = [2]uint64{ev.Ucall.Args[1], ev.Ucall.Args[2]}
	}
	o.counts = snapshot()
	bd.mu.Lock()
	o.dataFaults = append([]hv.Fault(nil), bd.dataFaults...)
	o.ptFaults = append([]hv.Fault(nil), bd.ptFaults...)
	bd.mu.Unlock()
	return o
}

// dirty reports whether page 0 of slot is in its dirty log.
func (bd *bed) dirty(slot uint32) bool {
	GinkgoHelper()
	bitmap := make([]uint64, 1)
	Expect(bd.g.VM.GetDirtyLog(slot, bitmap)).To(Succeed())
	return bitmap[0]&1 != 0
}

// openFds counts the process's descriptors: a spec that leaves one behind
// leaks with every run.
func openFds() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
