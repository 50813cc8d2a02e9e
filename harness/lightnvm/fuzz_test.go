package lightnvm

import (
	"encoding/binary"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// checkInvariants holds after any guest input: chunk states are valid,
// write pointers within cnlb, the open counters match the chunks.
func checkInvariants(t *testing.T, d *Device) {
	d.mu.Lock()
	defer d.mu.Unlock()
	m := d.media
	open, openPU := 0, make([]int, len(m.openPU))
	for i, c := range m.chunks {
		switch c.State {
		case ChunkFree, ChunkClosed, ChunkOffline:
		case ChunkOpen:
			open++
			openPU[i/m.geo.Chunks]++
		default:
			t.Fatalf("chunk %d in state %#x", i, c.State)
		}
		if c.WP > c.CNLB {
			t.Fatalf("chunk %d: wp %d past cnlb %d", i, c.WP, c.CNLB)
		}
		if c.State == ChunkFree && c.WP != 0 {
			t.Fatalf("FREE chunk %d with wp %d", i, c.WP)
		}
	}
	if open != m.open || open > m.geo.MaxOC {
		t.Fatalf("open chunks %d, counter %d, maxoc %d", open, m.open, m.geo.MaxOC)
	}
	for pu, n := range openPU {
		if n != m.openPU[pu] || n > m.geo.MaxOCPU {
			t.Fatalf("PU %d: open %d, counter %d, maxocpu %d", pu, n, m.openPU[pu], m.geo.MaxOCPU)
		}
	}
}

// FuzzSubmissionEntry feeds arbitrary 64-byte entries to the admin queue
// or an I/O queue, with arbitrary bytes where their pointers may land:
// every entry completes exactly once with its CID, nothing panics, and
// the chunk invariants hold.
func FuzzSubmissionEntry(f *testing.F) {
	seed := func(c Command, admin bool, extra []byte) {
		b := c.Encode()
		f.Add(b[:], admin, extra)
	}
	g := smallGeometry()
	seed(Command{Opcode: IOVectorWrite, NSID: 1, PRP1: 0x200000, CDW12: 3, CDW10: 0x300000}, false, []byte{0, 0, 0, 0, 0, 0, 0, 0, 1})
	seed(Command{Opcode: IOVectorRead, NSID: 1, PRP1: 0x200000, CDW10: uint32(g.EncodeLBA(Addr{Chunk: 1}))}, false, nil)
	seed(Command{Opcode: IOVectorReset, NSID: 1, MPTR: 0x200000, CDW12: 1, CDW10: 0x300000}, false, make([]byte, 16))
	seed(Command{Opcode: AdminCreateCQ, PRP1: 0x200000, CDW10: 3 | 15<<16, CDW11: 3 | 31<<16}, true, nil)
	seed(Command{Opcode: AdminCreateSQ, PRP1: 0x200000, CDW10: 3 | 15<<16, CDW11: 1 | 1<<16}, true, nil)
	seed(Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: 0x200000, PRP2: 0x300000, CDW10: LogReportChunk | 0x3ff<<16}, true, []byte{0, 0x10, 0x20})
	seed(Command{Opcode: AdminGeometry, NSID: 1, PRP1: 0x200ff8, PRP2: 0x300000}, true, nil)
	seed(Command{Opcode: AdminDeleteCQ, CDW10: 1}, true, nil)
	mem, ga := newMemAccess(f)
	f.Fuzz(func(t *testing.T, raw []byte, admin bool, extra []byte) {
		if len(raw) < SQEntrySize {
			return
		}
		clear(mem.Bytes()[:1<<20])
		r := newRigOn(t, mem, ga, Config{Geometry: smallGeometry()})
		defer r.dev.Close()
		q := r.adm
		if !admin {
			q = r.ioQueue(1, 8, 2)
		}
		// Whatever the entry points at: fuzz bytes at 0x200000 and
		// 0x300000 (and PRP lists built from them).
		ga.WriteGPA(0x200000, extra)
		ga.WriteGPA(0x300000, extra)
		cmd, err := DecodeCommand(raw[:SQEntrySize])
		if err != nil {
			t.Fatal(err)
		}
		// Dwords 2-3 are reserved: the decoder drops them.
		want := append([]byte(nil), raw[:SQEntrySize]...)
		clear(want[8:16])
		if back := cmd.Encode(); string(back[:]) != string(want) {
			t.Fatal("command encode/decode round trip")
		}
		before := r.dev.Stats()
		cqe := r.cmd(q, cmd)
		after := r.dev.Stats()
		if after.Submitted != before.Submitted+1 || after.Completed != before.Completed+1 {
			t.Fatalf("one entry: submitted +%d completed +%d", after.Submitted-before.Submitted, after.Completed-before.Completed)
		}
		if cqe.Status == StatusSuccess && cqe.Result != 0 {
			t.Fatalf("success with failed-LBA bits %#x", cqe.Result)
		}
		if n := cmd.NLB() + 1; !admin && n <= MaxVectorLBAs && n < 64 && cqe.Result>>uint(n) != 0 {
			t.Fatalf("bitmap %#x marks indices past the %d LBAs", cqe.Result, n)
		}
		checkInvariants(t, r.dev)
	})
}

// FuzzVectorLBAList runs arbitrary LBA lists (any length, any bits)
// through write, read and reset: failed bits only for real indices, a
// status exactly when a bit is set (or for the whole command), write
// pointers never move backwards except by reset, invariants hold.
func FuzzVectorLBAList(f *testing.F) {
	g := smallGeometry()
	var seq []byte
	for s := 0; s < 8; s++ {
		seq = binary.LittleEndian.AppendUint64(seq, g.EncodeLBA(Addr{Sector: s}))
	}
	f.Add(seq, uint8(0), uint8(0))
	f.Add(seq, uint8(1), uint8(1))
	f.Add(append(seq, seq...), uint8(2), uint8(3))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint8(0), uint8(7))
	f.Fuzz(func(t *testing.T, raw []byte, op, mccap uint8) {
		geo := smallGeometry()
		geo.MCCAP = uint32(mccap) & (MCCAPMultiReset | MCCAPEarlyReset)
		m := newMedia(geo, Options{DULBE: op&4 != 0}, &memStore{})
		// Some state first: a few chunks written, one closed.
		for ci := 0; ci < 3; ci++ {
			var l []uint64
			for s := 0; s < 8*(ci+1); s++ {
				l = append(l, geo.EncodeLBA(m.addrOf(ci, s)))
			}
			m.write(l, make([]byte, len(l)*geo.SectorSize))
		}
		var lbas []uint64
		for i := 0; i+8 <= len(raw) && len(lbas) < MaxVectorLBAs; i += 8 {
			lbas = append(lbas, binary.LittleEndian.Uint64(raw[i:]))
		}
		if len(lbas) == 0 {
			return
		}
		wps := make([]uint64, len(m.chunks))
		for i, c := range m.chunks {
			wps[i] = c.WP
		}
		var res vecResult
		var err error
		switch op % 3 {
		case 0:
			res, err = m.write(lbas, make([]byte, len(lbas)*geo.SectorSize))
		case 1:
			res, err = m.read(lbas, make([]byte, len(lbas)*geo.SectorSize))
		case 2:
			res = m.reset(lbas)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(lbas) < 64 && res.failed>>uint(len(lbas)) != 0 {
			t.Fatalf("bitmap %#x beyond %d LBAs", res.failed, len(lbas))
		}
		if (res.status == StatusSuccess) != (res.failed == 0) {
			t.Fatalf("status %v with bitmap %#x", res.status, res.failed)
		}
		if op%3 != 2 {
			for i, c := range m.chunks {
				if c.WP < wps[i] {
					t.Fatalf("chunk %d wp %d → %d without a reset", i, wps[i], c.WP)
				}
			}
		}
		d := &Device{media: m}
		checkInvariants(t, d)
	})
}

// FuzzRegisterAccess plays arbitrary register and doorbell accesses
// against an enabled controller: no panic, no error from Access, and the
// device still serves a queue afterwards unless the guest disabled it.
func FuzzRegisterAccess(f *testing.F) {
	f.Add([]byte{0x14, 0x00, 4, 0, 0, 0, 0})             // CC = 0
	f.Add([]byte{0x00, 0x10, 4, 0xff, 0xff, 0xff, 0xff}) // SQ 0 doorbell past the size
	f.Add([]byte{0x0c, 0x20, 4, 1, 0, 0, 0})             // MSI-X 0 control
	f.Add([]byte{0x28, 0x00, 8, 1, 2, 3, 4})
	mem, ga := newMemAccess(f)
	f.Fuzz(func(t *testing.T, ops []byte) {
		clear(mem.Bytes()[:1<<20])
		r := newRigOn(t, mem, ga, Config{Geometry: smallGeometry()})
		defer r.dev.Close()
		for i := 0; i+7 <= len(ops); i += 7 {
			off := uint64(binary.LittleEndian.Uint16(ops[i:])) % RegionSize
			size := []int{1, 2, 4, 8}[ops[i+2]%4]
			data := make([]byte, size)
			copy(data, ops[i+3:i+7])
			if err := r.dev.Access(&hv.Access{Offset: off, Data: data, Write: ops[i+2]&0x80 == 0}); err != nil {
				t.Fatalf("access %#x/%d: %v", off, size, err)
			}
		}
		checkInvariants(t, r.dev)
	})
}

// FuzzStateFile decodes arbitrary chunk-state files: an error or a table
// that satisfies the invariants, never a panic.
func FuzzStateFile(f *testing.F) {
	g := smallGeometry()
	m := newMedia(g, Options{}, &memStore{})
	f.Add(encodeState(g, m.chunks))
	m.chunks[3].State, m.chunks[3].WP = ChunkOpen, 4
	f.Add(encodeState(g, m.chunks))
	f.Add([]byte(stateMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMedia(g, Options{}, &memStore{})
		if err := decodeState(g, b, m.chunks); err != nil {
			return
		}
		for i, c := range m.chunks {
			if c.WP > c.CNLB {
				t.Fatalf("chunk %d loaded with wp %d > cnlb", i, c.WP)
			}
		}
		if string(encodeState(g, m.chunks)) != string(b) {
			t.Fatal("a file that decodes does not re-encode to itself")
		}
	})
}
