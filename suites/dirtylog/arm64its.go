package dirtylog

// KVM's own writes to guest memory, with no vCPU running: the case the
// dirty ring's backup bitmap (KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP) exists
// for. On arm64 they are the vGICv3's: the ITS writes its device table,
// interrupt translation tables and collection table into guest memory at
// KVM_DEV_ARM_ITS_SAVE_TABLES, the redistributors their LPI pending
// tables at KVM_DEV_ARM_VGIC_SAVE_PENDING_TABLES. KVM (6.12,
// mark_page_dirty_in_slot) puts a page dirtied with no running vCPU in
// the slot's bitmap, which only exists on a ring VM with the capability;
// kvm_arch_allow_write_without_running_vcpu() is true on arm64 while a
// vGIC table write is in progress, so without the bitmap such a write is
// not warned about: it is logged nowhere.
//
// The host builds the ITS state itself: it programs the redistributor
// and ITS registers through device attributes and queues MAPD, MAPC and
// MAPTI commands in guest memory, which KVM runs when GITS_CWRITER is
// written. The tables live in the dirty-logged slot of the arm64 writer
// guest (arm64.go), which writes other pages of it in the same round.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sys/unix"
)

// Guest-physical places: the vGIC and the ITS frame where the virt board
// has them; the tables at offsets of the logged slot (a64DataGPA, 64 KiB
// aligned as GITS_BASER with 64 KiB pages and GICR_PENDBASER want).
const (
	itsGICD  = 0x0800_0000
	itsGICR  = 0x080a_0000
	itsFrame = 0x0808_0000

	itsPages   = 256     // the logged slot: 1 MiB
	itsDevTab  = 0x00000 // one 64 KiB page: device IDs 0..8191
	itsCollTab = 0x10000 // one 64 KiB page
	itsITTs    = 0x20000 // the devices' ITTs, up to itsPendTab
	itsPendTab = 0x80000 // 8 KiB: one bit per interrupt ID below 2^16
	itsPropTab = 0xa0000 // 56 KiB: one byte per LPI; read by KVM, never written
	itsIDBits  = 16
	// itsJunk fills the device, collection and ITT areas before a save,
	// so every entry KVM writes changes its page.
	itsJunk = 0xa5
	// itsGuestFirst is the first page the guest writes in the rounds.
	itsGuestFirst = 200
	// itsLPIBase is the first LPI interrupt ID.
	itsLPIBase = 8192
)

// itsEvent is one mapped event of a device: its LPI and collection.
type itsEvent struct {
	ev, lpi uint32
	icid    uint16
}

// itsDev is one device: its ITT (an offset in the logged slot), the
// number of event ID bits the ITT is sized for, its mapped events.
type itsDev struct {
	id     uint32
	itt    uint64
	bits   int
	events []itsEvent
}

// itsScene is what the host maps, in command order: collections (each to
// vCPU 0), then devices with their events. Devices are listed by
// increasing ID and events by increasing event ID, the order KVM saves
// them in (and the order its next-offset fields count in).
type itsScene struct {
	colls []uint16
	devs  []itsDev
}

// itsDefault spreads the entries over pages: device table entries on
// pages 0, 1 and 13 of the slot, the collection table on page 16, ITT
// entries on pages 32, 48, 50 and 64 (that ITT starts 256 bytes into its
// page), LPIs pending at bytes 1024.. and 5000 of the pending table
// (pages 128 and 129).
var itsDefault = itsScene{
	colls: []uint16{3, 1},
	devs: []itsDev{
		{id: 3, itt: itsITTs, bits: 4, events: []itsEvent{{0, itsLPIBase, 3}, {9, itsLPIBase + 9, 1}}},
		{id: 700, itt: itsITTs + 0x10000, bits: 11, events: []itsEvent{{1, itsLPIBase + 108, 3}, {1500, 40000, 1}}},
		{id: 7000, itt: itsITTs + 0x20100, bits: 2, events: []itsEvent{{2, itsLPIBase + 208, 1}}},
	},
}

// commands maps the scene: MAPC, MAPD, MAPTI, then a SYNC.
func (s itsScene) commands() []hv.ITSCommand {
	var out []hv.ITSCommand
	for _, c := range s.colls {
		out = append(out, hv.ITSMapC(c, 0, true))
	}
	for _, d := range s.devs {
		out = append(out, hv.ITSMapD(d.id, a64DataGPA+d.itt, d.bits, true))
		for _, e := range d.events {
			out = append(out, hv.ITSMapTI(d.id, e.ev, e.lpi, e.icid))
		}
	}
	return append(out, hv.ITSSync(0))
}

// The saved entries, KVM's ITS table ABI rev 0 (8 bytes each):
//
//	DTE: Valid[63] | next device ID offset[62:49] | ITT address>>8 [48:5] | event ID bits-1 [4:0]
//	ITE: next event ID offset[63:48] | pINTID[47:16] | ICID[15:0]
//	CTE: Valid[63] | RDbase (vCPU number)[51:16] | ICID[15:0]
//
// A collection table that is not full ends with an all-zero entry.
const (
	dteNextShift = 49
	dteITTShift  = 5
	iteNextShift = 48
	itePINTShift = 16
	cteRDShift   = 16
)

// savedWords is every 8-byte word a save of the scene writes, by slot
// offset, with its value.
func (s itsScene) savedWords() map[uint64]uint64 {
	w := map[uint64]uint64{}
	for i, d := range s.devs {
		next := uint64(0)
		if i+1 < len(s.devs) {
			next = min(uint64(s.devs[i+1].id-d.id), 1<<14-1)
		}
		w[itsDevTab+8*uint64(d.id)] = 1<<63 | next<<dteNextShift | (a64DataGPA+d.itt)>>8<<dteITTShift | uint64(d.bits-1)
		for k, e := range d.events {
			next := uint64(0)
			if k+1 < len(d.events) {
				next = min(uint64(d.events[k+1].ev-e.ev), 1<<16-1)
			}
			w[d.itt+8*uint64(e.ev)] = next<<iteNextShift | uint64(e.lpi)<<itePINTShift | uint64(e.icid)
		}
	}
	for i, c := range s.colls {
		w[itsCollTab+8*uint64(i)] = 1<<63 | 0<<cteRDShift | uint64(c)
	}
	w[itsCollTab+8*uint64(len(s.colls))] = 0
	return w
}

// pagesOfWords is the set of slot pages the words are on.
func pagesOfWords(words map[uint64]uint64) *pageSet {
	s := newPageSet(itsPages)
	for off := range words {
		s.add(off / hv.PageSize)
	}
	return s
}

// pendingBits is the pending table's bit of each LPI of the events, as
// byte offset -> bits.
func pendingBits(evs []itsEvent) map[uint64]byte {
	out := map[uint64]byte{}
	for _, e := range evs {
		out[uint64(e.lpi)/8] |= 1 << (e.lpi % 8)
	}
	return out
}

// itsEnv is the writer guest of arm64.go with a vGICv3 and an ITS whose
// tables are in its logged slot.
type itsEnv struct {
	*a64Env
	vm  hv.ARM64ITSVM
	its hv.ARM64ITS
	// cmdq is the command queue's GPA (in slot 0, not logged); cwriter
	// the offset of the next command.
	cmdq, cwriter uint64
	// rings harvests the vCPU rings alone (the mode's tracker would add
	// the backup bitmap).
	rings *tracker
}

// newITSEnv builds the guest in mode, the vGIC and the ITS, fills the
// table areas with junk, and maps scene. Nothing it does writes the
// logged slot: KVM only reads it (the property table, the pending table
// at MAPTI).
func newITSEnv(b *framework.Backend, mode *logMode, scene itsScene) *itsEnv {
	GinkgoHelper()
	e := newITSBare(b, mode)
	mem := e.data.Bytes()
	for i := itsDevTab; i < itsPendTab; i++ {
		mem[i] = itsJunk
	}
	e.program(true)
	e.queue(scene.commands()...)
	return e
}

// newITSBare builds the guest in mode, the vGIC and the ITS, with the
// ITS's registers as KVM creates them.
func newITSBare(b *framework.Backend, mode *logMode) *itsEnv {
	GinkgoHelper()
	b.Require(hv.CapVGICITS)
	e := newA64Env(b, mode, itsPages, a64RingBytes)
	vm, ok := e.g.VM.(hv.ARM64ITSVM)
	Expect(ok).To(BeTrue(), "%s offers %s but its VM is no hv.ARM64ITSVM", b.Name, hv.CapVGICITS)
	Expect(vm.CreateVGICv3(itsGICD, itsGICR, 0)).To(Succeed())
	its, err := vm.CreateITS(itsFrame)
	Expect(err).NotTo(HaveOccurred())
	// KVM keeps GITS_CBASER's address 64 KiB aligned (it clears bits
	// 15:12 of what is written), so the queue must be.
	cmdq, err := e.g.Alloc(hv.PageSize, 0x10000)
	Expect(err).NotTo(HaveOccurred())
	env := &itsEnv{a64Env: e, vm: vm, its: its, cmdq: cmdq}
	env.rings = newTracker(&logMode{name: "ring", ring: true}, e.g.VM, e.g.VCPUs)
	env.rings.track(a64Slot, itsPages)
	return env
}

// program points vCPU 0's redistributor at the property and pending
// tables and the ITS at its tables and command queue, and enables the
// ITS if enable is set (a restore enables it after RESTORE_TABLES).
func (e *itsEnv) program(enable bool) {
	GinkgoHelper()
	e.setRedist64(hv.GICRPropBaser, hv.GICRPropBaserValue(a64DataGPA+itsPropTab, itsIDBits))
	e.setRedist64(hv.GICRPendBaser, hv.GICRPendBaserValue(a64DataGPA+itsPendTab))
	for _, r := range []struct {
		off uint32
		v   uint64
	}{
		{hv.GITSCBaser, hv.ITSCBaserValue(e.cmdq, 1)},
		{hv.GITSBaser0, hv.ITSBaserValue(a64DataGPA+itsDevTab, 1)},
		{hv.GITSBaser0 + 8, hv.ITSBaserValue(a64DataGPA+itsCollTab, 1)},
	} {
		Expect(e.its.SetReg(r.off, r.v)).To(Succeed())
	}
	if enable {
		e.enable()
	}
}

// enable sets GITS_CTLR.Enabled and expects it to stick.
func (e *itsEnv) enable() {
	GinkgoHelper()
	Expect(e.its.SetReg(hv.GITSCtlr, hv.GITSCtlrEnabled)).To(Succeed())
	ctlr, err := e.its.GetReg(hv.GITSCtlr)
	Expect(err).NotTo(HaveOccurred())
	Expect(ctlr&hv.GITSCtlrEnabled).NotTo(BeZero(), "GITS_CTLR %#x after enabling (refused when a BASER or CBASER is not valid)", ctlr)
}

// enableLPIs sets GICR_CTLR.EnableLPIs of vCPU 0 (INT needs it).
func (e *itsEnv) enableLPIs() {
	GinkgoHelper()
	Expect(e.vm.SetRedistReg(0, hv.GICRCtlr, hv.GICRCtlrEnableLPIs)).To(Succeed())
	ctlr, err := e.vm.GetRedistReg(0, hv.GICRCtlr)
	Expect(err).NotTo(HaveOccurred())
	Expect(ctlr&hv.GICRCtlrEnableLPIs).NotTo(BeZero(), "GICR_CTLR %#x after enabling LPIs", ctlr)
}

// expectPending expects the pending table to hold exactly bits.
func (e *itsEnv) expectPending(bits map[uint64]byte, what string) {
	GinkgoHelper()
	table := e.data.Bytes()[itsPendTab : itsPendTab+(1<<itsIDBits)/8]
	for off, v := range table {
		Expect(v).To(Equal(bits[uint64(off)]), "pending table byte %d (interrupt IDs %d..%d), %s", off, 8*off, 8*off+7, what)
	}
}

// pendingPages is the set of pending-table pages holding bits.
func pendingPages(bits map[uint64]byte) *pageSet {
	s := newPageSet(itsPages)
	for off := range bits {
		s.add((itsPendTab + off) / hv.PageSize)
	}
	return s
}

// setRedist64 writes a 64-bit redistributor register of vCPU 0, as two
// 32-bit halves.
func (e *itsEnv) setRedist64(off uint32, v uint64) {
	GinkgoHelper()
	Expect(e.vm.SetRedistReg(0, off, uint32(v))).To(Succeed())
	Expect(e.vm.SetRedistReg(0, off+4, uint32(v>>32))).To(Succeed())
}

// queue writes commands into the queue and GITS_CWRITER past them, and
// expects the ITS to have read them all (GITS_CREADR == GITS_CWRITER).
func (e *itsEnv) queue(cmds ...hv.ITSCommand) {
	GinkgoHelper()
	q := e.g.Mem.Bytes()[e.cmdq : e.cmdq+hv.PageSize]
	for _, c := range cmds {
		Expect(e.cwriter+32).To(BeNumerically("<=", hv.PageSize), "the command queue is one page")
		copy(q[e.cwriter:], c.Bytes())
		e.cwriter += 32
	}
	Expect(e.its.SetReg(hv.GITSCWriter, e.cwriter)).To(Succeed())
	r, err := e.its.GetReg(hv.GITSCReadr)
	Expect(err).NotTo(HaveOccurred())
	Expect(r).To(Equal(e.cwriter), "GITS_CREADR after GITS_CWRITER = %#x", e.cwriter)
}

// bitmap is GetDirtyLog of the logged slot: the backup bitmap on a ring
// VM.
func (e *itsEnv) bitmap() (*pageSet, error) {
	bm := make([]uint64, bitmapWords(itsPages))
	if err := e.g.VM.GetDirtyLog(a64Slot, bm); err != nil {
		return nil, err
	}
	s := newPageSet(itsPages)
	s.addWords(bm)
	return s, nil
}

// expectBitmap expects the backup bitmap to hold exactly want.
func (e *itsEnv) expectBitmap(want *pageSet, what string) {
	GinkgoHelper()
	got, err := e.bitmap()
	Expect(err).NotTo(HaveOccurred(), "GetDirtyLog: %s", what)
	Expect(got.equal(want)).To(BeTrue(), "backup bitmap, %s: %s", what, diff(got, want))
}

// expectRings expects the vCPU rings to hold exactly want.
func (e *itsEnv) expectRings(want *pageSet, what string) {
	GinkgoHelper()
	got, err := e.rings.collectRing(-1)
	Expect(err).NotTo(HaveOccurred())
	Expect(got[a64Slot].equal(want)).To(BeTrue(), "ring entries, %s: %s", what, diff(got[a64Slot], want))
}

// checkGuestPages is checkData of the pages the guest writes (the others
// hold the ITS's tables).
func (e *itsEnv) checkGuestPages() {
	GinkgoHelper()
	mem := e.data.Bytes()
	for p := uint64(itsGuestFirst); p < itsPages; p++ {
		lo := binary.LittleEndian.Uint64(mem[p*hv.PageSize:])
		hi := binary.LittleEndian.Uint64(mem[(p+1)*hv.PageSize-8:])
		Expect([]uint64{lo, hi}).To(Equal([]uint64{e.last[p], e.last[p]}), "page %d's first and last word after iteration %d", p, e.iter)
	}
}

// snapshot copies the logged slot.
func (e *itsEnv) snapshot() []byte { return bytes.Clone(e.data.Bytes()) }

// changedPages is the set of pages whose bytes differ from before.
func (e *itsEnv) changedPages(before []byte) *pageSet {
	now := e.data.Bytes()
	s := newPageSet(itsPages)
	for p := uint64(0); p < itsPages; p++ {
		lo, hi := p*hv.PageSize, (p+1)*hv.PageSize
		if !bytes.Equal(before[lo:hi], now[lo:hi]) {
			s.add(p)
		}
	}
	return s
}

// expectSaved expects every word of words in the slot.
func (e *itsEnv) expectSaved(words map[uint64]uint64) {
	GinkgoHelper()
	mem := e.data.Bytes()
	for off, want := range words {
		got := binary.LittleEndian.Uint64(mem[off:])
		Expect(got).To(Equal(want), "saved %s at slot offset %#x (page %d): %s, want %s; %s", itsEntryKind(off), off, off/hv.PageSize, itsDescribe(off, got), itsDescribe(off, want), e.state())
	}
}

// state describes the ITS registers and the start of the collection
// table, for failure messages.
func (e *itsEnv) state() string {
	var b bytes.Buffer
	for _, r := range []struct {
		name string
		off  uint32
	}{{"CTLR", hv.GITSCtlr}, {"TYPER", hv.GITSTyper}, {"CBASER", hv.GITSCBaser}, {"CWRITER", hv.GITSCWriter}, {"CREADR", hv.GITSCReadr}, {"BASER0", hv.GITSBaser0}, {"BASER1", hv.GITSBaser0 + 8}} {
		v, err := e.its.GetReg(r.off)
		fmt.Fprintf(&b, "GITS_%s=%#x", r.name, v)
		if err != nil {
			fmt.Fprintf(&b, "(%v)", err)
		}
		b.WriteString(" ")
	}
	for _, off := range []uint32{hv.GICRCtlr, hv.GICRPropBaser, hv.GICRPropBaser + 4, hv.GICRPendBaser, hv.GICRPendBaser + 4} {
		v, err := e.vm.GetRedistReg(0, off)
		fmt.Fprintf(&b, "GICR[%#x]=%#x(%v) ", off, v, err)
	}
	mem := e.data.Bytes()
	fmt.Fprintf(&b, "cmdq at %#x: first command %x; collection table %#x %#x %#x",
		e.cmdq, e.g.Mem.Bytes()[e.cmdq:e.cmdq+32], binary.LittleEndian.Uint64(mem[itsCollTab:]), binary.LittleEndian.Uint64(mem[itsCollTab+8:]), binary.LittleEndian.Uint64(mem[itsCollTab+16:]))
	return b.String()
}

func itsEntryKind(off uint64) string {
	switch {
	case off < itsCollTab:
		return "device table entry"
	case off < itsITTs:
		return "collection table entry"
	}
	return "interrupt translation entry"
}

// itsDescribe decodes a saved entry for messages.
func itsDescribe(off, v uint64) string {
	switch {
	case off < itsCollTab:
		return fmt.Sprintf("%#x (valid %d, next +%d, ITT %#x, %d event bits)", v, v>>63, v>>dteNextShift&(1<<14-1), (v>>dteITTShift&(1<<44-1))<<8, v&0x1f+1)
	case off < itsITTs:
		return fmt.Sprintf("%#x (valid %d, vCPU %d, collection %d)", v, v>>63, v>>cteRDShift&(1<<36-1), v&0xffff)
	}
	return fmt.Sprintf("%#x (next +%d, LPI %d, collection %d)", v, v>>iteNextShift, v>>itePINTShift&0xffff_ffff, v&0xffff)
}

// guestRound has the guest write n pages from itsGuestFirst on (of
// iteration round) and returns them.
func (e *itsEnv) guestRound(ctx context.Context, n uint64) *pageSet {
	GinkgoHelper()
	set := rangeSet(itsPages, itsGuestFirst, itsGuestFirst+n)
	Expect(e.step(ctx, set)).To(BeEmpty(), "ring-full exits")
	return set
}

// runITSSaveBitmap: on a ring VM with the backup bitmap, SAVE_TABLES
// puts exactly the pages it wrote in the bitmap, in no vCPU's ring, and
// writes them again (the same pages, the same bytes) at the next save.
func runITSSaveBitmap(ctx context.Context, b *framework.Backend) {
	scene := itsDefault
	e := newITSEnv(b, modeRingBackup, scene)
	words := scene.savedWords()
	want := pagesOfWords(words)
	none := newPageSet(itsPages)

	By("setting up the ITS reads the slot and dirties nothing")
	e.expectRings(none, "after the ITS setup")
	e.expectBitmap(none, "after the ITS setup")

	By(fmt.Sprintf("the guest writes pages %d..; SAVE_TABLES writes %d entries on pages %v", itsGuestFirst, len(words), want))
	guest := e.guestRound(ctx, 8)
	before := e.snapshot()
	Expect(e.its.Ctrl(hv.ITSSaveTables)).To(Succeed())
	e.expectSaved(words)
	changed := e.changedPages(before)
	Expect(changed.equal(want)).To(BeTrue(), "the pages whose bytes SAVE_TABLES changed: %s", diff(changed, want))
	e.expectRings(guest, "the guest's writes only")
	e.expectBitmap(want, "after SAVE_TABLES")
	e.expectBitmap(none, "a second GetDirtyLog")

	By("a second save rewrites the same entries: the same pages again, unchanged bytes")
	before = e.snapshot()
	Expect(e.its.Ctrl(hv.ITSSaveTables)).To(Succeed())
	Expect(e.changedPages(before).count()).To(BeZero(), "bytes changed by a save of unchanged tables")
	e.expectRings(none, "after the second save")
	e.expectBitmap(want, "after the second save")
	e.checkGuestPages()
	e.finish(ctx)
	AddReportEntry("ITS save", fmt.Sprintf("%d entries on %d pages %v, each save marked exactly them in the backup bitmap; guest pages %v in the ring", len(words), want.count(), want, guest))
}

// runITSPendingBitmap: the pending-table save writes the bytes of the
// LPIs whose pending state differs from the table's, marks exactly
// their pages in the backup bitmap and none when nothing differs.
func runITSPendingBitmap(ctx context.Context, b *framework.Backend) {
	scene := itsDefault
	e := newITSEnv(b, modeRingBackup, scene)
	none := newPageSet(itsPages)
	pend := []itsEvent{scene.devs[0].events[0], scene.devs[1].events[1]}
	bits := pendingBits(pend)
	want := pendingPages(bits)

	By(fmt.Sprintf("LPIs on, INT makes LPIs %d and %d pending; the pending table is untouched", pend[0].lpi, pend[1].lpi))
	e.enableLPIs()
	e.queue(hv.ITSInt(scene.devs[0].id, pend[0].ev), hv.ITSInt(scene.devs[1].id, pend[1].ev), hv.ITSSync(0))
	e.expectBitmap(none, "after INT")

	By(fmt.Sprintf("SAVE_PENDING_TABLES writes their bits, on pages %v", want))
	guest := e.guestRound(ctx, 4)
	before := e.snapshot()
	Expect(e.vm.SaveVGICPendingTables()).To(Succeed())
	e.expectPending(bits, "after SAVE_PENDING_TABLES")
	changed := e.changedPages(before)
	Expect(changed.equal(want)).To(BeTrue(), "pages changed by the pending save: %s", diff(changed, want))
	e.expectRings(guest, "the guest's writes only")
	e.expectBitmap(want, "after SAVE_PENDING_TABLES")

	By("a second save finds the table up to date and writes nothing")
	Expect(e.vm.SaveVGICPendingTables()).To(Succeed())
	e.expectBitmap(none, "after the second pending save")
	e.expectRings(none, "after the second pending save")
	e.checkGuestPages()
	e.finish(ctx)
	AddReportEntry("pending save", fmt.Sprintf("LPIs %d and %d: pages %v marked once, nothing at the second save", pend[0].lpi, pend[1].lpi, want))
}

// runITSRestoreBitmap: a second VM restores the first one's saved state
// (the tables and the pending table, copied by the host, which KVM does
// not log). RESTORE_TABLES rebuilds the translations from them and
// consumes the pending bits of the LPIs it maps, clearing them in guest
// memory: exactly the pending-table pages are in its backup bitmap, none
// in a ring. Its own saves then write what the first VM's did.
func runITSRestoreBitmap(ctx context.Context, b *framework.Backend) {
	scene := itsDefault
	none := newPageSet(itsPages)
	pend := []itsEvent{scene.devs[0].events[1], scene.devs[2].events[0], scene.devs[1].events[1]}
	bits := pendingBits(pend)
	words := scene.savedWords()

	By("the source VM maps the scene, makes 3 LPIs pending and saves both kinds of tables")
	src := newITSBare(b, modeRingBackup)
	src.program(true)
	src.queue(scene.commands()...)
	src.enableLPIs()
	src.queue(hv.ITSInt(scene.devs[0].id, pend[0].ev), hv.ITSInt(scene.devs[2].id, pend[1].ev), hv.ITSInt(scene.devs[1].id, pend[2].ev), hv.ITSSync(0))
	Expect(src.its.Ctrl(hv.ITSSaveTables)).To(Succeed())
	Expect(src.vm.SaveVGICPendingTables()).To(Succeed())
	src.expectSaved(words)
	src.expectPending(bits, "in the source after its saves")
	img := src.snapshot()

	By("the destination VM gets the image, the registers, then RESTORE_TABLES")
	dst := newITSBare(b, modeRingBackup)
	copy(dst.data.Bytes(), img)
	dst.program(false)
	dst.expectBitmap(none, "before the restore")
	before := dst.snapshot()
	Expect(dst.its.Ctrl(hv.ITSRestoreTables)).To(Succeed())
	dst.enable()
	dst.expectPending(map[uint64]byte{}, "after RESTORE_TABLES consumed the pending bits")
	want := pendingPages(bits)
	changed := dst.changedPages(before)
	Expect(changed.equal(want)).To(BeTrue(), "pages RESTORE_TABLES changed: %s", diff(changed, want))
	dst.expectRings(none, "after the restore")
	dst.expectBitmap(want, "after RESTORE_TABLES")

	By("the destination's saves write the source's tables and pending bits back")
	before = dst.snapshot()
	Expect(dst.its.Ctrl(hv.ITSSaveTables)).To(Succeed())
	dst.expectSaved(words)
	Expect(dst.changedPages(before).count()).To(BeZero(), "bytes changed by saving the restored tables")
	dst.expectBitmap(pagesOfWords(words), "after the destination's SAVE_TABLES")
	Expect(dst.vm.SaveVGICPendingTables()).To(Succeed())
	dst.expectPending(bits, "after the destination's SAVE_PENDING_TABLES")
	dst.expectBitmap(want, "after the destination's SAVE_PENDING_TABLES")
	dst.expectRings(none, "after the destination's saves")
	AddReportEntry("restore", fmt.Sprintf("%d LPIs pending: RESTORE_TABLES cleared their bits on pages %v (marked in the backup bitmap); the restored ITS saved the same %d entries", len(pend), want, len(words)))
}

// runITSSaveNoBitmap: on a ring VM without the backup bitmap, KVM 6.12
// accepts SAVE_TABLES and writes the tables, but the pages are in no
// ring and there is no bitmap to find them in (KVM_GET_DIRTY_LOG: ENXIO
// on a ring VM without it); kvm_arch_allow_write_without_running_vcpu()
// keeps mark_page_dirty_in_slot from warning (the framework's kernel log
// check would fail the spec on a WARNING).
func runITSSaveNoBitmap(ctx context.Context, b *framework.Backend) {
	scene := itsDefault
	e := newITSEnv(b, modeDirtyRing, scene)
	words := scene.savedWords()
	want := pagesOfWords(words)
	guest := e.guestRound(ctx, 8)
	before := e.snapshot()
	err := e.its.Ctrl(hv.ITSSaveTables)
	Expect(err).NotTo(HaveOccurred(), "SAVE_TABLES on a ring VM without the backup bitmap")
	e.expectSaved(words)
	changed := e.changedPages(before)
	Expect(changed.equal(want)).To(BeTrue(), "the pages SAVE_TABLES changed: %s", diff(changed, want))
	e.expectRings(guest, "the guest's writes only: none of the pages SAVE_TABLES wrote")
	_, err = e.bitmap()
	Expect(errors.Is(err, unix.ENXIO)).To(BeTrue(), "KVM_GET_DIRTY_LOG on a ring VM without the bitmap: %v, want ENXIO", err)
	e.checkGuestPages()
	e.finish(ctx)
	AddReportEntry("no backup bitmap", fmt.Sprintf("SAVE_TABLES succeeded and changed pages %v; ring entries: only the guest's %v; KVM_GET_DIRTY_LOG: %v", changed, guest, err))
}

// a64ITSSpecs are the backup bitmap's specs of KVM's own writes; mode is
// the dirty-ring or the dirty-ring-with-bitmap mode.
func a64ITSSpecs(b *framework.Backend, mode *logMode) {
	labels := taxonomy.Needs(hv.CapVGICITS)
	switch mode {
	case modeRingBackup:
		It("the ITS table save with no vCPU running marks exactly the table pages it wrote, in the backup bitmap and no ring", labels,
			func(ctx SpecContext) { runITSSaveBitmap(ctx, b) }, SpecTimeout(a64SpecTimeout))
		It("the vGIC pending-table save marks exactly the pending-table pages it changed, in the backup bitmap", labels,
			func(ctx SpecContext) { runITSPendingBitmap(ctx, b) }, SpecTimeout(a64SpecTimeout))
		It("the ITS table restore in a second VM consumes the pending bits and marks exactly their pages in its backup bitmap", labels,
			func(ctx SpecContext) { runITSRestoreBitmap(ctx, b) }, SpecTimeout(a64SpecTimeout))
	case modeDirtyRing:
		It("without the backup bitmap the ITS table save succeeds and the pages it wrote are logged nowhere", labels,
			func(ctx SpecContext) { runITSSaveNoBitmap(ctx, b) }, SpecTimeout(a64SpecTimeout))
	}
}
