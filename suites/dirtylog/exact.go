package dirtylog

import (
	"context"
	"fmt"
	"sort"
	"syscall"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// exactEnv runs a scenario in which the guest touches known pages and the
// host, between the guest's steps, harvests and compares exactly. A
// scenario is written as a sequence: guest writes and reads are emitted
// into the program, host steps become a SYNC whose handler runs them.
type exactEnv struct {
	b     *framework.Backend
	mode  *logMode
	g     *guest.Guest
	p     *guest.Program
	tr    *tracker
	slots []*testSlot
	steps []hostStep
	// mmio are the MMIO exits seen, in order.
	mmio []hv.MMIOExit
}

type hostStep struct {
	what string
	fn   func()
}

// writeValue is what the guest stores into page p of slot id: unique per
// page so a write that lands elsewhere shows.
func writeValue(id uint32, p uint64) uint64 { return 0xd1d1_0000_0000_0000 | uint64(id)<<32 | p }

func newExactEnv(b *framework.Backend, mode *logMode, cpl guest.Mode, ringBytes int) *exactEnv {
	GinkgoHelper()
	mode.require(b)
	if mode.ring && ringBytes == 0 {
		ringBytes = smallestRing(b)
	}
	g := b.NewGuest(guest.Config{Mode: cpl, VM: mode.vmConfig(ringBytes)})
	return &exactEnv{b: b, mode: mode, g: g, p: g.Program(), tr: newTracker(mode, g.VM, g.VCPUs)}
}

// slot adds slot id of pages pages (before the guest runs). A logged slot
// is tracked and primed: its first harvest is checked and consumed.
func (e *exactEnv) slot(id uint32, pages uint64, flags hv.MemFlags) *testSlot {
	GinkgoHelper()
	s := addSlot(e.g, id, slotGPA(id), pages, flags)
	e.slots = append(e.slots, s)
	if flags&hv.MemLogDirty != 0 {
		e.tr.track(id, pages)
		Expect(e.tr.prime(id)).To(Succeed())
	}
	return s
}

// write emits guest stores of writeValue into pages of s.
func (e *exactEnv) write(s *testSlot, pages ...uint64) {
	for _, p := range pages {
		e.p.MovAbs(asm.RDX, pageAddr(s.gpa, p))
		e.p.MovAbs(asm.RAX, writeValue(s.id, p))
		e.p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	}
}

// read emits guest loads from pages of s.
func (e *exactEnv) read(s *testSlot, pages ...uint64) {
	for _, p := range pages {
		e.p.MovAbs(asm.RDX, pageAddr(s.gpa, p))
		e.p.Mov(asm.RAX, asm.Q(asm.RDX, 0))
	}
}

// host emits a SYNC at which the host runs fn.
func (e *exactEnv) host(what string, fn func()) {
	e.steps = append(e.steps, hostStep{what, fn})
	e.p.Sync(int64(len(e.steps)))
}

// expect emits a harvest that must find exactly want (slot → pages) in
// the logged slots; slots not named must be clean.
func (e *exactEnv) expect(want map[*testSlot][]uint64) {
	desc := "harvest: want"
	var keys []*testSlot
	for s := range want {
		keys = append(keys, s)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].id < keys[j].id })
	for _, s := range keys {
		desc += fmt.Sprintf(" slot %d %v", s.id, want[s])
	}
	e.host(desc, func() {
		GinkgoHelper()
		w := map[uint32]*pageSet{}
		for s, pages := range want {
			w[s.id] = pagesOf(s.pages, pages...)
		}
		got, err := e.tr.collect()
		Expect(err).NotTo(HaveOccurred())
		Expect(expectSets(got, w)).To(Succeed())
	})
}

// setFlags changes a slot's flags (as a host step), tracking it while it
// logs; re-enabled logging is primed like a new slot.
func (e *exactEnv) setFlags(s *testSlot, flags hv.MemFlags) {
	e.host(fmt.Sprintf("slot %d flags %s", s.id, flags), func() {
		GinkgoHelper()
		s.flags = flags
		Expect(e.g.VM.SetMemslot(s.memslot())).To(Succeed())
		if flags&hv.MemLogDirty == 0 {
			e.tr.untrack(s.id)
			return
		}
		e.tr.track(s.id, s.pages)
		Expect(e.tr.prime(s.id)).To(Succeed(), "logging enabled again on slot %d", s.id)
	})
}

// run ends the program and runs it: SYNCs run the host steps, MMIO exits
// are recorded and resumed, anything else fails the spec.
func (e *exactEnv) run(ctx context.Context) {
	GinkgoHelper()
	e.p.Done()
	Expect(e.g.Load(e.p)).To(Succeed())
	for {
		ev, err := e.g.Run(ctx, 0)
		Expect(err).NotTo(HaveOccurred())
		switch {
		case ev.Ucall != nil && ev.Ucall.Cmd == guest.UcallDone:
			if e.mode.ring && e.tr.dups > 0 {
				AddReportEntry("duplicate ring entries", fmt.Sprint(e.tr.dups))
			}
			return
		case ev.Ucall != nil && ev.Ucall.Cmd == guest.UcallSync:
			k := int(ev.Ucall.Stage())
			Expect(k).To(BeNumerically(">=", 1))
			Expect(k).To(BeNumerically("<=", len(e.steps)))
			By(e.steps[k-1].what)
			e.steps[k-1].fn()
		case ev.Exit != nil && ev.Exit.Kind() == hv.ExitMMIO:
			m := ev.Exit.(*hv.MMIOExit)
			c := *m
			c.Data = append([]byte(nil), m.Data...)
			e.mmio = append(e.mmio, c)
		default:
			Fail(fmt.Sprintf("unexpected stop of the guest: %v", e.g.Unexpected(0, ev.Exit)))
		}
	}
}

// exactCase is one scenario of the exact-set table.
type exactCase func(e *exactEnv)

// exactCases are the exact-set scenarios; each runs in every log mode.
// Slots of 64·k+3 pages make the last bitmap word partial.
var exactCases = []struct {
	name  string
	needs []hv.Cap
	run   exactCase
}{
	{"the first and the last page of a slot of 64k+3 pages", nil, func(e *exactEnv) {
		a := e.slot(1, 4*64+3, hv.MemLogDirty)
		last := a.pages - 1
		e.write(a, 0, last)
		e.expect(map[*testSlot][]uint64{a: {0, last}})
		e.write(a, last)
		e.expect(map[*testSlot][]uint64{a: {last}})
		e.expect(nil)
	}},
	{"neighbours across 64-bit words of the bitmap", nil, func(e *exactEnv) {
		a := e.slot(1, 4*64+3, hv.MemLogDirty)
		e.write(a, 63, 64, 127, 128, 191)
		e.expect(map[*testSlot][]uint64{a: {63, 64, 127, 128, 191}})
		e.write(a, 192, 64)
		e.expect(map[*testSlot][]uint64{a: {64, 192}})
	}},
	{"pages in a second slot", nil, func(e *exactEnv) {
		a := e.slot(1, 2*64+3, hv.MemLogDirty)
		c := e.slot(2, 64+3, hv.MemLogDirty)
		e.write(a, 5)
		e.write(c, 0, c.pages-1)
		e.expect(map[*testSlot][]uint64{a: {5}, c: {0, c.pages - 1}})
		e.write(c, 1)
		e.expect(map[*testSlot][]uint64{c: {1}})
	}},
	{"reads do not dirty pages", nil, func(e *exactEnv) {
		a := e.slot(1, 2*64+3, hv.MemLogDirty)
		e.write(a, 10)
		e.read(a, 10, 11, 12, a.pages-1)
		e.expect(map[*testSlot][]uint64{a: {10}})
		e.read(a, 10, 11, 100)
		e.expect(nil)
	}},
	{"a write to a read-only slot is an mmio exit and not logged", []hv.Cap{hv.CapReadOnlyMem}, func(e *exactEnv) {
		a := e.slot(1, 64+3, hv.MemLogDirty)
		r := e.slot(2, 16, hv.MemLogDirty|hv.MemReadOnly)
		const pattern = 0x0123456789abcdef
		// Host code initialising a read-only slot: a plain write, which
		// the atomics (guest-like accesses) refuse there.
		Expect(e.g.Write64(pageAddr(r.gpa, 3), pattern)).To(Succeed())
		e.write(r, 3)
		e.read(r, 3)
		e.write(a, 7)
		e.expect(map[*testSlot][]uint64{a: {7}})
		e.host("the write to the read-only slot exited as mmio and left memory alone", func() {
			Expect(e.mmio).To(HaveLen(1), "mmio exits")
			m := e.mmio[0]
			Expect([]any{m.GPA, m.Len, m.Write, m.Value()}).To(Equal([]any{pageAddr(r.gpa, 3), 8, true, writeValue(r.id, 3)}))
			Expect(r.value(3)).To(Equal(uint64(pattern)), "read-only memory after the write")
		})
	}},
	{"disabling logging on a slot stops logging", nil, func(e *exactEnv) {
		a := e.slot(1, 2*64+3, hv.MemLogDirty)
		e.write(a, 1, 2)
		e.expect(map[*testSlot][]uint64{a: {1, 2}})
		e.setFlags(a, 0)
		e.write(a, 3, 4, 1)
		e.host("no log for a slot without logging", func() {
			if e.mode.ring {
				// A ring entry for the slot now would be a stray.
				_, err := e.tr.collect()
				Expect(err).NotTo(HaveOccurred())
				return
			}
			err := e.g.VM.GetDirtyLog(a.id, make([]uint64, bitmapWords(a.pages)))
			Expect(err).To(MatchError(syscall.ENOENT), "GetDirtyLog on a slot without logging")
		})
		e.setFlags(a, hv.MemLogDirty)
		e.write(a, 5)
		e.expect(map[*testSlot][]uint64{a: {5}})
	}},
	{"pages a device writes through guest memory", []hv.Cap{hv.CapGuestMemoryTrack}, hostWriteCase},
	{"a deleted and re-created slot starts clean", nil, func(e *exactEnv) {
		a := e.slot(1, 2*64+3, hv.MemLogDirty)
		e.write(a, 7, 8)
		if e.mode.ring {
			// Ring entries belong to the vCPU, not the slot: harvest them
			// before the slot goes, or they would show up afterwards.
			e.expect(map[*testSlot][]uint64{a: {7, 8}})
		}
		e.host("delete slot 1 and create it again", func() {
			Expect(e.g.VM.DeleteMemslot(a.id)).To(Succeed())
			e.tr.untrack(a.id)
			Expect(e.g.VM.SetMemslot(a.memslot())).To(Succeed())
			e.tr.track(a.id, a.pages)
			Expect(e.tr.prime(a.id)).To(Succeed(), "the re-created slot's first harvest")
		})
		e.write(a, 9)
		e.expect(map[*testSlot][]uint64{a: {9}})
	}},
}
