package lightnvm

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	nvm "github.com/kvmspec/kvmspec/harness/lightnvm"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// barGPA is where the register block sits: above guest RAM, away from
// the ucall window and the APICs.
const barGPA = 0xc000_0000

// suiteGeometry: 2 groups × 4 PUs × 16 chunks of 64 512-byte sectors, so
// one 8-LBA vector command moves one 4 KiB page (PRP1 only).
func suiteGeometry() nvm.Geometry {
	return nvm.Geometry{Version: nvm.V20, Groups: 2, PUnits: 4, Chunks: 16, CLBA: 64, WSMin: 8, WSOpt: 8, MWCunit: 8,
		MaxOC: 128, MaxOCPU: 16, SectorSize: 512, ReadTyp: 50000, ReadMax: 100000, WriteTyp: 200000, WriteMax: 400000,
		ResetTyp: 500000, ResetMax: 1000000}
}

// lbasPerCmd LBAs per vector command: one ws_opt unit, one page of data.
const lbasPerCmd = 8

// rig is one guest with the device attached and the driver's blocks laid
// out in its memory.
type rig struct {
	g      *guest.Guest
	dev    *nvm.Device
	geo    nvm.Geometry
	ctl    uint64
	geoBuf uint64
	admin  *work
	// last is each vCPU's last work block, for chaining.
	last []*work
}

// queue is a queue pair: its guest block and rings.
type queue struct {
	qb, sq, cq uint64
	size, qid  int
	irq        bool
}

// work is one work block and what the host needs to judge it.
type work struct {
	cb, seen uint64
	q        *queue
	n        int
	capacity int
	// For vector I/O: each command's LBAs and data page.
	lbas [][]uint64
	data []uint64
	op   uint8
}

type rigConfig struct {
	vcpus int
	irq   bool // give the VM an irqchip (the spec requires it)
	dev   nvm.Config
}

func newRig(b *framework.Backend, rc rigConfig) *rig {
	GinkgoHelper()
	if rc.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	if rc.irq {
		b.Require(hv.CapIRQChip)
		b.Require(hv.CapMSI)
	}
	g := b.NewGuest(guest.Config{Mode: guest.CPL3, VCPUs: rc.vcpus, MemSize: 48 << 20, VM: hv.VMConfig{IRQChip: rc.irq}})
	if rc.dev.Geometry.Version == "" {
		rc.dev.Geometry = suiteGeometry()
	}
	dev, err := nvm.New(g.VM, g.VM, rc.dev)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.VM.Attach(dev, hv.Region{Space: hv.SpaceMMIO, Base: barGPA, Size: nvm.RegionSize})).To(Succeed())
	Expect(g.PT.Map(barGPA, barGPA, nvm.RegionSize, guest.PTEWrite|guest.PTEUser|guest.PTEPCD)).To(Succeed())
	if rc.irq {
		Expect(g.Handle(guest.Handler{Vector: irqVector, EOI: true})).To(Succeed())
	}
	r := &rig{g: g, dev: dev, geo: dev.Geometry(), last: make([]*work, rc.vcpus)}
	r.ctl = r.alloc(4096)
	asq, acq := r.alloc(64*nvm.SQEntrySize), r.alloc(64*nvm.CQEntrySize)
	r.put64(r.ctl+ctlBar, barGPA)
	r.put64(r.ctl+ctlAQA, 63|63<<16)
	r.put64(r.ctl+ctlASQ, asq)
	r.put64(r.ctl+ctlACQ, acq)
	r.put64(r.ctl+ctlVersion, map[nvm.Version]uint64{nvm.V12: 1, nvm.V20: 2}[r.geo.Version])
	adminQ := r.newQueueBlock(&queue{sq: asq, cq: acq, size: 64, qid: 0})
	r.admin = r.newWork(adminQ, 64)
	r.put64(r.ctl+ctlAdminCB, r.admin.cb)
	// Every driver reads the geometry first and checks its version byte.
	r.geoBuf = r.alloc(nvm.IdentifySize)
	r.put64(r.ctl+ctlGeoBuf, r.geoBuf)
	r.admin.add(r, nvm.Command{Opcode: nvm.AdminGeometry, NSID: 1, PRP1: r.geoBuf})
	return r
}

func (r *rig) alloc(n uint64) uint64 {
	GinkgoHelper()
	a, err := r.g.Alloc((n+4095)&^4095, 4096)
	Expect(err).NotTo(HaveOccurred(), "guest memory for the driver")
	b, err := r.g.Bytes(a, int((n+4095)&^4095))
	Expect(err).NotTo(HaveOccurred())
	clear(b)
	return a
}

func (r *rig) put64(gpa, v uint64) {
	GinkgoHelper()
	Expect(r.g.Write64(gpa, v)).To(Succeed())
}

func (r *rig) get64(gpa uint64) uint64 {
	GinkgoHelper()
	v, err := r.g.Read64(gpa)
	Expect(err).NotTo(HaveOccurred())
	return v
}

func (r *rig) bytes(gpa uint64, n int) []byte {
	GinkgoHelper()
	b, err := r.g.Bytes(gpa, n)
	Expect(err).NotTo(HaveOccurred())
	return b
}

func (r *rig) newQueueBlock(q *queue) *queue {
	q.qb = r.alloc(qbSize)
	for off, v := range map[int32]uint64{qbBar: barGPA, qbSQ: q.sq, qbCQ: q.cq, qbQSize: uint64(q.size), qbQID: uint64(q.qid), qbPhase: 1} {
		r.put64(q.qb+uint64(off), v)
	}
	if q.irq {
		r.put64(q.qb+qbVector, irqVector)
	}
	return q
}

// ioQueue creates queue pair qid for vCPU v: the host lays it out, the
// admin work gets the create commands, and an interrupt queue targets
// vCPU v's APIC.
func (r *rig) ioQueue(v, qid, size int, irq bool) *queue {
	q := r.newQueueBlock(&queue{sq: r.alloc(uint64(size) * nvm.SQEntrySize), cq: r.alloc(uint64(size) * nvm.CQEntrySize), size: size, qid: qid, irq: irq})
	if irq {
		r.put64(q.qb+qbMSIAddr, hv.MSIAddrBase|uint64(v)<<hv.MSIDestShift)
		r.put64(q.qb+qbMSIData, irqVector)
	}
	cdw11 := uint32(1) // physically contiguous, no interrupts: a poll queue
	if irq {
		cdw11 |= 2 | uint32(qid)<<16 // MSI-X entry qid
	}
	r.admin.add(r, nvm.Command{Opcode: nvm.AdminCreateCQ, PRP1: q.cq, CDW10: uint32(qid) | uint32(size-1)<<16, CDW11: cdw11})
	r.admin.add(r, nvm.Command{Opcode: nvm.AdminCreateSQ, PRP1: q.sq, CDW10: uint32(qid) | uint32(size-1)<<16, CDW11: 1 | uint32(qid)<<16})
	return q
}

// newWork allocates a work block on q with room for capacity commands
// (at least 64); add refuses more.
func (r *rig) newWork(q *queue, capacity int) *work {
	w := &work{q: q, capacity: max(capacity, 64)}
	capacity = w.capacity
	w.cb = r.alloc(cbSize)
	r.put64(w.cb+cbQueue, q.qb)
	r.put64(w.cb+cbCmds, r.alloc(uint64(capacity)*nvm.SQEntrySize))
	w.seen = r.alloc(uint64(capacity))
	r.put64(w.cb+cbSeen, w.seen)
	r.put64(w.cb+cbQD, 1)
	return w
}

// add appends a command; its CID is its index.
func (w *work) add(r *rig, c nvm.Command) {
	GinkgoHelper()
	Expect(w.n).To(BeNumerically("<", w.capacity), "work block full")
	c.CID = uint16(w.n)
	e := c.Encode()
	copy(r.bytes(r.get64(w.cb+cbCmds)+uint64(w.n)*nvm.SQEntrySize, nvm.SQEntrySize), e[:])
	w.n++
	r.put64(w.cb+cbN, uint64(w.n))
}

// chain appends w to vCPU v's work.
func (r *rig) chain(v int, w *work, qd int, stop int64) {
	r.put64(w.cb+cbQD, uint64(qd))
	r.put64(w.cb+cbStop, uint64(stop))
	if r.last[v] == nil {
		r.put64(r.ctl+ctlCBs+8*uint64(v), w.cb)
	} else {
		r.put64(r.last[v].cb+cbNext, w.cb)
	}
	r.last[v] = w
}

// chainReset appends a controller reset to vCPU v's work.
func (r *rig) chainReset(v int, q *queue) {
	w := r.newWork(q, 0)
	r.put64(w.cb+cbAction, actionReset)
	r.chain(v, w, 1, 0)
}

// vectorWork builds n vector commands of op on q over consecutive
// sectors from chunk index firstChunk, each with its own data page;
// writes carry each LBA's pattern.
func (r *rig) vectorWork(q *queue, op uint8, firstChunk, n int) *work {
	GinkgoHelper()
	w := r.newWork(q, n)
	w.op = op
	lists := r.alloc(uint64(n) * lbasPerCmd * 8)
	g := r.geo
	for i := 0; i < n; i++ {
		sector := i * lbasPerCmd
		ci := firstChunk + sector/g.CLBA
		a := nvm.Addr{Group: ci / (g.PUnits * g.Chunks), PU: ci / g.Chunks % g.PUnits, Chunk: ci % g.Chunks, Sector: sector % g.CLBA}
		lbas := make([]uint64, lbasPerCmd)
		list := r.bytes(lists+uint64(i)*lbasPerCmd*8, lbasPerCmd*8)
		for k := range lbas {
			b := a
			b.Sector += k
			lbas[k] = g.Encode(b)
			binary.LittleEndian.PutUint64(list[8*k:], lbas[k])
		}
		page := r.alloc(4096)
		if op == nvm.IOVectorWrite {
			buf := r.bytes(page, lbasPerCmd*g.SectorSize)
			for k, l := range lbas {
				copy(buf[k*g.SectorSize:], nvm.Pattern(l, g.SectorSize))
			}
		}
		w.lbas, w.data = append(w.lbas, lbas), append(w.data, page)
		addr := lists + uint64(i)*lbasPerCmd*8
		w.add(r, nvm.Command{Opcode: op, NSID: 1, PRP1: page, CDW10: uint32(addr), CDW11: uint32(addr >> 32), CDW12: lbasPerCmd - 1})
	}
	return w
}

// run loads the driver and runs every vCPU to DONE; onSync sees each SYNC.
func (r *rig) run(ctx context.Context, onSync func(*guest.Ucall) error) {
	GinkgoHelper()
	Expect(r.g.Load(driverProgram(r.g, r.ctl))).To(Succeed())
	Expect(r.g.RunAll(ctx, onSync)).To(Succeed())
}

// results reads a work block's outcome and checks that every command
// completed exactly once, without error.
func (r *rig) expectAllOnce(w *work, what string) {
	GinkgoHelper()
	done, errs := r.get64(w.cb+cbDone), r.get64(w.cb+cbErrors)
	Expect(errs).To(BeZero(), "%s: %d failed commands, last status %#x", what, errs, r.get64(w.cb+cbLastBad))
	Expect(done).To(Equal(uint64(w.n)), "%s: completions", what)
	for cid, n := range r.bytes(w.seen, w.n) {
		Expect(n).To(Equal(byte(1)), "%s: cid %d completed %d times", what, cid, n)
	}
}

// expectData compares a read work's pages with the patterns written.
func (r *rig) expectData(w *work, what string) {
	GinkgoHelper()
	ss := r.geo.SectorSize
	for i, lbas := range w.lbas {
		buf := r.bytes(w.data[i], lbasPerCmd*ss)
		for k, l := range lbas {
			if string(buf[k*ss:(k+1)*ss]) != string(nvm.Pattern(l, ss)) {
				Fail(fmt.Sprintf("%s: command %d LBA %#x read back wrong data", what, i, l))
			}
		}
	}
}
