package lightnvm

import (
	"encoding/binary"
	"sync"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The test kit: a device over real hv.Memory slots through hv.GuestAccess,
// a recording interrupt sink, and a host-side NVMe driver that does what
// the guest driver does, register by register.

type recordedMSI struct {
	addr uint64
	data uint32
}

type irqSink struct {
	mu   sync.Mutex
	msis []recordedMSI
	err  error // returned by SignalMSI when set (no irqchip)
}

func (s *irqSink) Interrupt(int, uint8) error { return hv.ErrUnsupported }
func (s *irqSink) SetIRQLine(uint32, bool) error {
	return hv.ErrUnsupported
}
func (s *irqSink) SignalMSI(addr uint64, data uint32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if _, err := hv.DecodeMSI(addr, data); err != nil {
		return err
	}
	s.msis = append(s.msis, recordedMSI{addr, data})
	return nil
}

func (s *irqSink) count(vector uint8) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.msis {
		if uint8(m.data) == vector {
			n++
		}
	}
	return n
}

const memSize = 8 << 20

type rig struct {
	t    testing.TB
	mem  *hv.Memory
	ga   *hv.GuestAccess
	irq  *irqSink
	dev  *Device
	next uint64 // bump allocator for guest pages
	adm  *qpair
}

// smallGeometry: 2 groups × 2 PUs × 4 chunks of 32 sectors, 4 KiB
// sectors, ws_min 4, ws_opt 8, mw_cunits 8, maxoc 6, maxocpu 3.
func smallGeometry() Geometry {
	return Geometry{Version: V20, Groups: 2, PUnits: 2, Chunks: 4, CLBA: 32, WSMin: 4, WSOpt: 8, MWCunit: 8,
		MaxOC: 6, MaxOCPU: 3, SectorSize: 4096, ReadTyp: 20000, ReadMax: 40000, WriteTyp: 100000, WriteMax: 200000,
		ResetTyp: 300000, ResetMax: 500000}
}

func newMemAccess(t testing.TB) (*hv.Memory, *hv.GuestAccess) {
	mem, err := hv.NewMemory(memSize, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	slots := []hv.Memslot{{Slot: 0, GPA: 0, Size: memSize, Memory: mem}}
	return mem, &hv.GuestAccess{Slots: func() []hv.Memslot { return slots }}
}

func newRig(t testing.TB, cfg Config) *rig {
	t.Helper()
	mem, ga := newMemAccess(t)
	return newRigOn(t, mem, ga, cfg)
}

// newRigOn builds a rig on existing guest memory (fuzz targets reuse one).
func newRigOn(t testing.TB, mem *hv.Memory, ga *hv.GuestAccess, cfg Config) *rig {
	t.Helper()
	r := &rig{t: t, mem: mem, ga: ga, irq: &irqSink{}, next: 0x10000}
	if cfg.Geometry.Version == "" {
		cfg.Geometry = smallGeometry()
	}
	dev, err := New(ga, r.irq, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	r.dev = dev
	r.enable()
	return r
}

func (r *rig) alloc(n uint64) uint64 {
	n = (n + pageSize - 1) &^ (pageSize - 1)
	a := r.next
	r.next += n
	if r.next > memSize {
		r.t.Fatal("test rig out of guest memory")
	}
	return a
}

func (r *rig) mmio(off uint64, size int, v uint64, write bool) uint64 {
	b := make([]byte, size)
	put(b, v)
	if err := r.dev.Access(&hv.Access{Offset: off, Data: b, Write: write}); err != nil {
		r.t.Fatalf("mmio %#x: %v", off, err)
	}
	return le64(b)
}

func (r *rig) w32(off uint64, v uint32) { r.mmio(off, 4, uint64(v), true) }
func (r *rig) r32(off uint64) uint32    { return uint32(r.mmio(off, 4, 0, false)) }

// qpair is the driver's view of one SQ/CQ pair.
type qpair struct {
	id         int
	sq, cq     uint64
	size       uint32
	tail, head uint32
	phase      bool
	cid        uint16
}

func (r *rig) enable() {
	r.adm = &qpair{id: 0, sq: r.alloc(64 * SQEntrySize), cq: r.alloc(64 * CQEntrySize), size: 64, phase: true}
	r.w32(RegMSIXTable, hv.MSIAddrBase) // vector 0: the admin queue's
	r.w32(RegMSIXTable+8, 0x40)
	r.w32(RegAQA, 63|63<<16)
	r.mmio(RegASQ, 8, r.adm.sq, true)
	r.mmio(RegACQ, 8, r.adm.cq, true)
	r.w32(RegCC, CCEnable|6<<16|4<<20)
	if r.r32(RegCSTS)&CSTSReady == 0 {
		r.t.Fatalf("controller not ready after enable: %s", r.dev.Stats().LastError)
	}
}

// submit writes cmd at the queue's tail and rings the doorbell.
func (r *rig) submit(q *qpair, cmd Command) uint16 {
	q.cid++
	cmd.CID = q.cid
	b := cmd.Encode()
	if err := r.ga.WriteGPA(q.sq+uint64(q.tail)*SQEntrySize, b[:]); err != nil {
		r.t.Fatal(err)
	}
	q.tail = (q.tail + 1) % q.size
	r.w32(DoorbellSQ(q.id), q.tail)
	return cmd.CID
}

// poll returns the next completion if its phase says it is there.
func (r *rig) poll(q *qpair) (Completion, bool) {
	var b [CQEntrySize]byte
	if err := r.ga.ReadGPA(q.cq+uint64(q.head)*CQEntrySize, b[:]); err != nil {
		r.t.Fatal(err)
	}
	c := DecodeCompletion(b[:])
	if c.Phase != q.phase {
		return c, false
	}
	q.head = (q.head + 1) % q.size
	if q.head == 0 {
		q.phase = !q.phase
	}
	r.w32(DoorbellCQ(q.id), q.head)
	return c, true
}

// cmd submits and waits for the completion (the device completes
// synchronously unless timing is on).
func (r *rig) cmd(q *qpair, c Command) Completion {
	r.t.Helper()
	cid := r.submit(q, c)
	for i := 0; ; i++ {
		if cqe, ok := r.poll(q); ok {
			if cqe.CID != cid {
				r.t.Fatalf("completion for cid %d, want %d", cqe.CID, cid)
			}
			return cqe
		}
		if i > 1e7 {
			r.t.Fatalf("no completion for opcode %#x", c.Opcode)
		}
	}
}

// ioQueue creates I/O queue pair qid; iv < 0 makes a poll queue.
func (r *rig) ioQueue(qid int, size uint32, iv int) *qpair {
	r.t.Helper()
	q := &qpair{id: qid, sq: r.alloc(uint64(size) * SQEntrySize), cq: r.alloc(uint64(size) * CQEntrySize), size: size, phase: true}
	cdw11 := uint32(1)
	if iv >= 0 {
		cdw11 |= 2 | uint32(iv)<<16
		base := RegMSIXTable + uint64(iv)*MSIXEntrySize
		r.w32(base, hv.MSIAddrBase)
		r.w32(base+8, uint32(0x40+iv))
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminCreateCQ, PRP1: q.cq, CDW10: uint32(qid) | (size-1)<<16, CDW11: cdw11}).Status; st != 0 {
		r.t.Fatalf("create CQ %d: %v", qid, st)
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminCreateSQ, PRP1: q.sq, CDW10: uint32(qid) | (size-1)<<16, CDW11: 1 | uint32(qid)<<16}).Status; st != 0 {
		r.t.Fatalf("create SQ %d: %v", qid, st)
	}
	return q
}

// vecCmd builds a vector command over lbas with a data buffer at buf.
func (r *rig) vecCmd(op uint8, lbas []uint64, buf uint64) Command {
	c := Command{Opcode: op, NSID: 1, CDW12: uint32(len(lbas) - 1)}
	if len(lbas) == 1 {
		c.CDW10, c.CDW11 = uint32(lbas[0]), uint32(lbas[0]>>32)
	} else {
		list := r.alloc(uint64(len(lbas)) * 8)
		b := make([]byte, 8*len(lbas))
		for i, l := range lbas {
			binary.LittleEndian.PutUint64(b[8*i:], l)
		}
		if err := r.ga.WriteGPA(list, b); err != nil {
			r.t.Fatal(err)
		}
		c.CDW10, c.CDW11 = uint32(list), uint32(list>>32)
	}
	if buf != 0 {
		c.PRP1, c.PRP2 = r.prps(buf, uint64(len(lbas))*uint64(r.dev.geo.SectorSize))
	}
	return c
}

// prps describes a contiguous buffer (page aligned) with PRP1/PRP2,
// building a PRP list when it spans more than two pages.
func (r *rig) prps(buf, n uint64) (uint64, uint64) {
	pages := (n + pageSize - 1) / pageSize
	switch {
	case pages <= 1:
		return buf, 0
	case pages == 2:
		return buf, buf + pageSize
	}
	list := r.alloc((pages - 1) * 8)
	for i := uint64(1); i < pages; i++ {
		if err := r.ga.Store64(list+8*(i-1), buf+i*pageSize); err != nil {
			r.t.Fatal(err)
		}
	}
	return buf, list
}

// write writes sectors (pattern by LBA) through q and returns the CQE.
func (r *rig) write(q *qpair, lbas ...uint64) Completion {
	buf := r.alloc(uint64(len(lbas)) * uint64(r.dev.geo.SectorSize))
	for i, l := range lbas {
		if err := r.ga.WriteGPA(buf+uint64(i)*uint64(r.dev.geo.SectorSize), Pattern(l, r.dev.geo.SectorSize)); err != nil {
			r.t.Fatal(err)
		}
	}
	return r.cmd(q, r.vecCmd(IOVectorWrite, lbas, buf))
}

// read reads sectors and returns the CQE and the data.
func (r *rig) read(q *qpair, lbas ...uint64) (Completion, []byte) {
	n := uint64(len(lbas)) * uint64(r.dev.geo.SectorSize)
	buf := r.alloc(n)
	cqe := r.cmd(q, r.vecCmd(IOVectorRead, lbas, buf))
	out := make([]byte, n)
	if err := r.ga.ReadGPA(buf, out); err != nil {
		r.t.Fatal(err)
	}
	return cqe, out
}

func (r *rig) reset(q *qpair, lbas ...uint64) Completion {
	return r.cmd(q, r.vecCmd(IOVectorReset, lbas, 0))
}

// reportChunks reads n descriptors from index first.
func (r *rig) reportChunks(first, n int) ([]Chunk, Status) {
	buf := r.alloc(uint64(n) * ChunkDescriptorSize)
	numd := uint32(n*ChunkDescriptorSize/4 - 1)
	off := uint64(first) * ChunkDescriptorSize
	p1, p2 := r.prps(buf, uint64(n)*ChunkDescriptorSize)
	cqe := r.cmd(r.adm, Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: p1, PRP2: p2, CDW10: LogReportChunk | numd<<16,
		CDW11: numd >> 16, CDW12: uint32(off), CDW13: uint32(off >> 32)})
	if cqe.Status != 0 {
		return nil, cqe.Status
	}
	b := make([]byte, n*ChunkDescriptorSize)
	if err := r.ga.ReadGPA(buf, b); err != nil {
		r.t.Fatal(err)
	}
	out := make([]Chunk, n)
	for i := range out {
		out[i], _ = ParseDescriptor(b[i*ChunkDescriptorSize:])
	}
	return out, 0
}

// lba builds an address in the device's format.
func (r *rig) lba(grp, pu, chk, sec int) uint64 {
	return r.dev.geo.Encode(Addr{Group: grp, PU: pu, Chunk: chk, Sector: sec})
}

// seq is n consecutive LBAs of one chunk from sector first.
func (r *rig) seq(grp, pu, chk, first, n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = r.lba(grp, pu, chk, first+i)
	}
	return out
}

func (r *rig) chunk(grp, pu, chk int) Chunk {
	c, err := r.dev.Chunk(r.dev.geo.ChunkIndex(Addr{Group: grp, PU: pu, Chunk: chk}))
	if err != nil {
		r.t.Fatal(err)
	}
	return c
}
