package lightnvm

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"testing"
	"time"
)

// The ten OCSSD checks of devices.md (b), each through the NVMe queues.

// Check 1: identify golden test.
func TestIdentifyGolden(t *testing.T) {
	r := newRig(t, Config{})
	buf := r.alloc(IdentifySize)
	if st := r.cmd(r.adm, Command{Opcode: AdminGeometry, NSID: 1, PRP1: buf}).Status; st != 0 {
		t.Fatalf("geometry command: %v", st)
	}
	id := make([]byte, IdentifySize)
	if err := r.ga.ReadGPA(buf, id); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	g := smallGeometry()
	fields := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"mjr@0", uint64(id[0]), 2},
		{"mnr@1", uint64(id[1]), 0},
		{"num_grp@64", uint64(le.Uint16(id[64:])), uint64(g.Groups)},
		{"num_pu@66", uint64(le.Uint16(id[66:])), uint64(g.PUnits)},
		{"num_chk@68", uint64(le.Uint32(id[68:])), uint64(g.Chunks)},
		{"clba@72", uint64(le.Uint32(id[72:])), uint64(g.CLBA)},
		{"ws_min@128", uint64(le.Uint32(id[128:])), uint64(g.WSMin)},
		{"ws_opt@132", uint64(le.Uint32(id[132:])), uint64(g.WSOpt)},
		{"mw_cunits@136", uint64(le.Uint32(id[136:])), uint64(g.MWCunit)},
		{"maxoc@140", uint64(le.Uint32(id[140:])), uint64(g.MaxOC)},
		{"maxocpu@144", uint64(le.Uint32(id[144:])), uint64(g.MaxOCPU)},
		{"trdt@192", uint64(le.Uint32(id[192:])), uint64(g.ReadTyp)},
		{"trdm@196", uint64(le.Uint32(id[196:])), uint64(g.ReadMax)},
		{"twrt@200", uint64(le.Uint32(id[200:])), uint64(g.WriteTyp)},
		{"twrm@204", uint64(le.Uint32(id[204:])), uint64(g.WriteMax)},
		{"tcrst@208", uint64(le.Uint32(id[208:])), uint64(g.ResetTyp)},
		{"tcrsm@212", uint64(le.Uint32(id[212:])), uint64(g.ResetMax)},
	}
	for _, f := range fields {
		if f.got != f.want {
			t.Errorf("%s = %d, want %d", f.name, f.got, f.want)
		}
	}
	// The lbaf widths cover the geometry.
	grpLen, puLen, chkLen, lbaLen := id[8], id[9], id[10], id[11]
	for _, c := range []struct {
		name string
		bits uint8
		n    int
	}{{"grp_len", grpLen, g.Groups}, {"pu_len", puLen, g.PUnits}, {"chk_len", chkLen, g.Chunks}, {"lba_len", lbaLen, g.CLBA}} {
		if 1<<c.bits < c.n {
			t.Errorf("%s %d bits cannot hold %d", c.name, c.bits, c.n)
		}
	}
	back, err := ParseIdentity(id)
	if err != nil || back.Groups != g.Groups || back.CLBA != g.CLBA || back.MaxOCPU != g.MaxOCPU {
		t.Fatalf("parse identity back: %+v %v", back, err)
	}
}

func TestIdentity12Layout(t *testing.T) {
	g := geometry12()
	id := g.Identity()
	le := binary.LittleEndian
	if len(id) != IdentifySize || id[0] != 1 || id[2] != 1 {
		t.Fatalf("1.2 header: ver %d cgrps %d", id[0], id[2])
	}
	// struct nvme_nvm_id12_grp at 256: num_ch@+4 num_lun@+5 num_pln@+6
	// num_chk@+8 num_pg@+10 fpg_sz@+12 csecs@+14 sos@+16 mpos@+44.
	if id[260] != 2 || id[261] != 4 || id[262] != 2 || le.Uint16(id[264:]) != 16 || le.Uint16(id[266:]) != 8 ||
		le.Uint16(id[268:]) != 16384 || le.Uint16(id[270:]) != 4096 || le.Uint16(id[272:]) != 16 || le.Uint32(id[300:]) != 0x020202 {
		t.Fatalf("1.2 group fields: % x", id[256:304])
	}
	got, err := ParseIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's derivation: clba = (fpg_sz/csecs) × planes × pages,
	// ws_min = sectors per page, ws_opt doubled for dual plane,
	// mw_cunits = 8 × sectors per page, maxoc = luns × chunks, maxocpu = chunks.
	if got.CLBA != 4*2*8 || got.WSMin != 4 || got.WSOpt != 8 || got.MWCunit != 32 || got.MaxOC != 2*4*16 || got.MaxOCPU != 16 {
		t.Fatalf("derived 1.2 geometry: %+v", got)
	}
	bad := append([]byte(nil), id...)
	bad[256] = 1 // mtype
	if _, err := ParseIdentity(bad); err == nil {
		t.Error("1.2 identity with memory type 1 accepted")
	}
	bad = g20Identity(t, 1)
	if _, err := ParseIdentity(bad); err == nil {
		t.Error("2.1 identity accepted; the host takes exactly 2.0")
	}
}

func g20Identity(t *testing.T, minor byte) []byte {
	id := smallGeometry().Identity()
	id[1] = minor
	return id
}

func geometry12() Geometry {
	return Geometry{Version: V12, Channels: 2, LUNs: 4, Planes: 2, Blocks: 16, Pages: 8, PageSize: 16384, SectorSize: 4096,
		OOBSize: 16, MPOS: 0x020202, ReadTyp: 10000, ReadMax: 20000, ProgTyp: 50000, ProgMax: 100000, EraseTyp: 200000, EraseMax: 400000}
}

// Check 2 (device side): what the Linux host matched an OCSSD by.
func TestGuestRecognition(t *testing.T) {
	r := newRig(t, Config{})
	buf := r.alloc(IdentifySize)
	if st := r.cmd(r.adm, Command{Opcode: AdminIdentify, PRP1: buf, CDW10: CNSController}).Status; st != 0 {
		t.Fatal(st)
	}
	vid, _ := r.ga.Load32(buf)
	if uint16(vid) != PCIVendorCNEX {
		t.Errorf("controller vendor %#x, want %#x", uint16(vid), PCIVendorCNEX)
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminIdentify, NSID: 1, PRP1: buf, CDW10: CNSNamespace}).Status; st != 0 {
		t.Fatal(st)
	}
	ns := make([]byte, IdentifySize)
	r.ga.ReadGPA(buf, ns)
	g := smallGeometry()
	if ns[idNsVS] != 1 || binary.LittleEndian.Uint64(ns) != uint64(g.TotalChunks()*g.CLBA) || ns[idNsLBAF0+2] != 12 {
		t.Errorf("namespace: vs[0] %d nsze %d lbads %d", ns[idNsVS], binary.LittleEndian.Uint64(ns), ns[idNsLBAF0+2])
	}
	for _, c := range []Command{
		{Opcode: AdminIdentify, NSID: 2, PRP1: buf, CDW10: CNSNamespace},
		{Opcode: AdminGeometry, NSID: 0, PRP1: buf},
	} {
		if st := r.cmd(r.adm, c).Status; st.Code() != StatusInvalidNamespace {
			t.Errorf("opcode %#x nsid %d: %v, want invalid namespace", c.Opcode, c.NSID, st)
		}
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminIdentify, PRP1: buf, CDW10: 0x55}).Status; st.Code() != StatusInvalidField {
		t.Errorf("unknown CNS: %v", st)
	}
}

// Check 3: report chunk log.
func TestReportChunkLog(t *testing.T) {
	r := newRig(t, Config{})
	g := r.dev.geo
	all, st := r.reportChunks(0, g.TotalChunks())
	if st != 0 {
		t.Fatal(st)
	}
	for i, c := range all {
		want := g.Encode(Addr{Group: i / (g.PUnits * g.Chunks), PU: i / g.Chunks % g.PUnits, Chunk: i % g.Chunks})
		if c.State != ChunkFree || c.WP != 0 || c.CNLB != uint64(g.CLBA) || c.SLBA != want || c.Type != ChunkSeq {
			t.Fatalf("fresh chunk %d: %+v, want FREE wp 0 cnlb %d slba %#x", i, c, g.CLBA, want)
		}
	}
	// Index g·PU·C + p·C + c: write grp 1 pu 0 chk 2 and find it there.
	q := r.ioQueue(1, 16, -1)
	if st := r.write(q, r.seq(1, 0, 2, 0, 4)...).Status; st != 0 {
		t.Fatal(st)
	}
	one, st := r.reportChunks(1*g.PUnits*g.Chunks+0*g.Chunks+2, 1)
	if st != 0 || one[0].State != ChunkOpen || one[0].WP != 4 {
		t.Fatalf("written chunk in the log: %+v %v", one, st)
	}
	cases := []struct {
		name  string
		first int
		n     int
		want  Status
	}{
		{"offset at the log end", g.TotalChunks(), 1, 0},
		{"offset beyond the log end", g.TotalChunks() + 1, 1, StatusInvalidField},
		{"last entry", g.TotalChunks() - 1, 1, 0},
	}
	for _, c := range cases {
		if _, st := r.reportChunks(c.first, c.n); st.Code() != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: r.alloc(4096), CDW10: 0x02}).Status; st.Code() != StatusInvalidLogPage {
		t.Errorf("unknown log page: %v", st)
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: r.alloc(4096), CDW10: LogReportChunk | 0xffff<<16, CDW11: 0xffff}).Status; st.Code() != StatusInvalidField {
		t.Errorf("a 16 GiB log request: %v", st)
	}
}

// Check 4: write rules.
func TestWriteRules(t *testing.T) {
	cases := []struct {
		name  string
		setup func(r *rig, q *qpair)
		lbas  func(r *rig) []uint64
		want  Status
	}{
		{"ws_min multiple at wp", nil, func(r *rig) []uint64 { return r.seq(0, 0, 0, 0, 8) }, 0},
		{"not a multiple of ws_min", nil, func(r *rig) []uint64 { return r.seq(0, 0, 0, 0, 3) }, StatusInvalidField},
		{"start not at wp", nil, func(r *rig) []uint64 { return r.seq(0, 0, 0, 4, 4) }, StatusOutOfOrderWrite | StatusDNR},
		{"write to a CLOSED chunk", func(r *rig, q *qpair) { fill(r, q, 0, 0, 0) },
			func(r *rig) []uint64 { return r.seq(0, 0, 0, 0, 4) }, StatusWriteFault},
		{"write to an OFFLINE chunk", func(r *rig, q *qpair) { offline(r, q, 0, 0, 0) },
			func(r *rig) []uint64 { return r.seq(0, 0, 0, 0, 4) }, StatusWriteFault},
		{"write crossing cnlb", func(r *rig, q *qpair) { r.write(q, r.seq(0, 0, 3, 0, 52)...) },
			func(r *rig) []uint64 { return r.seq(0, 0, 3, 52, 8) }, StatusWriteFault},
		{"vector write with a gap", nil, func(r *rig) []uint64 {
			return append(r.seq(0, 0, 0, 0, 2), r.seq(0, 0, 0, 3, 2)...)
		}, StatusOutOfOrderWrite | StatusDNR},
		{"vector write descending", nil, func(r *rig) []uint64 {
			return []uint64{r.lba(0, 0, 0, 3), r.lba(0, 0, 0, 2), r.lba(0, 0, 0, 1), r.lba(0, 0, 0, 0)}
		}, StatusOutOfOrderWrite | StatusDNR},
		{"nonexistent chunk", nil, func(r *rig) []uint64 {
			l := r.lba(0, 0, 0, 0) | 1<<40
			return []uint64{l, l + 1, l + 2, l + 3}
		}, StatusWriteFault | StatusDNR},
		{"two chunks in one vector", nil, func(r *rig) []uint64 {
			return append(r.seq(0, 0, 1, 0, 4), r.seq(1, 1, 3, 0, 4)...)
		}, 0},
		{"too many open chunks per PU", func(r *rig, q *qpair) {
			for c := 0; c < 3; c++ {
				r.write(q, r.seq(0, 1, c, 0, 4)...)
			}
		}, func(r *rig) []uint64 { return r.seq(0, 1, 3, 0, 4) }, StatusWriteFault | StatusDNR},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// clba 56 < 2^6: sectors 56-63 are addressable but past cnlb.
			g := smallGeometry()
			g.CLBA = 56
			r := newRig(t, Config{Geometry: g})
			q := r.ioQueue(1, 16, -1)
			if c.setup != nil {
				c.setup(r, q)
			}
			if got := r.write(q, c.lbas(r)...).Status; got != c.want {
				t.Fatalf("status %v, want %v", got, c.want)
			}
		})
	}
}

// fill writes a whole chunk (it closes).
func fill(r *rig, q *qpair, grp, pu, chk int) {
	r.t.Helper()
	for s := 0; s < r.dev.geo.CLBA; s += 8 {
		if st := r.write(q, r.seq(grp, pu, chk, s, 8)...).Status; st != 0 {
			r.t.Fatalf("fill: %v", st)
		}
	}
}

// offline takes a chunk offline through error injection.
func offline(r *rig, q *qpair, grp, pu, chk int) {
	r.t.Helper()
	r.dev.InjectWriteFailure(Addr{Group: grp, PU: pu, Chunk: chk, Sector: 0})
	r.write(q, r.seq(grp, pu, chk, 0, 4)...)
	r.reset(q, r.lba(grp, pu, chk, 0))
	if c := r.chunk(grp, pu, chk); c.State != ChunkOffline {
		r.t.Fatalf("chunk not offline: %v", c)
	}
}

// Check 5: state transitions, resets under each MCCAP (the OPEN-chunk
// reset both ways: qemu-nvme allows it, liblightnvm expects Invalid Reset).
func TestStateTransitions(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 16, -1)
	r.write(q, r.seq(0, 0, 0, 0, 4)...)
	if c := r.chunk(0, 0, 0); c.State != ChunkOpen || c.WP != 4 {
		t.Fatalf("after the first write: %v, want OPEN wp 4", c)
	}
	for s := 4; s < 32; s += 4 {
		r.write(q, r.seq(0, 0, 0, s, 4)...)
	}
	if c := r.chunk(0, 0, 0); c.State != ChunkClosed || c.WP != 32 {
		t.Fatalf("written to cnlb: %v, want CLOSED", c)
	}
	before := r.chunk(0, 0, 0).WI
	if st := r.reset(q, r.lba(0, 0, 0, 0)).Status; st != 0 {
		t.Fatalf("reset CLOSED: %v", st)
	}
	if c := r.chunk(0, 0, 0); c.State != ChunkFree || c.WP != 0 || c.WI < before || c.PE != 1 {
		t.Fatalf("after reset: %+v", c)
	}

	cases := []struct {
		name  string
		mccap uint32
		state ChunkState
		want  Status
	}{
		{"FREE, no multiple resets", 0, ChunkFree, StatusInvalidReset},
		{"FREE, multiple resets", MCCAPMultiReset, ChunkFree, 0},
		{"OPEN, spec (liblightnvm)", 0, ChunkOpen, StatusInvalidReset},
		{"OPEN, early reset (qemu-nvme)", MCCAPEarlyReset, ChunkOpen, 0},
		{"CLOSED", 0, ChunkClosed, 0},
		{"OFFLINE", MCCAPMultiReset | MCCAPEarlyReset, ChunkOffline, StatusOfflineChunk},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := smallGeometry()
			g.MCCAP = c.mccap
			r := newRig(t, Config{Geometry: g})
			q := r.ioQueue(1, 16, -1)
			switch c.state {
			case ChunkOpen:
				r.write(q, r.seq(0, 0, 1, 0, 4)...)
			case ChunkClosed:
				fill(r, q, 0, 0, 1)
			case ChunkOffline:
				offline(r, q, 0, 0, 1)
			}
			if got := r.reset(q, r.lba(0, 0, 1, 0)).Status; got.Code() != c.want {
				t.Fatalf("reset: %v, want %v", got, c.want)
			}
			if c.want == 0 {
				if ch := r.chunk(0, 0, 1); ch.State != ChunkFree || ch.WP != 0 {
					t.Fatalf("after a good reset: %v", ch)
				}
			}
			// The identify's mccap advertises exactly what was honoured.
			if got := binary.LittleEndian.Uint32(r.dev.geo.Identity()[id20MCCAP:]); got != c.mccap {
				t.Fatalf("mccap %#x, want %#x", got, c.mccap)
			}
		})
	}
	t.Run("nonexistent chunk", func(t *testing.T) {
		r := newRig(t, Config{})
		q := r.ioQueue(1, 16, -1)
		if st := r.reset(q, r.lba(0, 0, 4, 0)).Status; st.Code() != StatusInvalidReset {
			t.Fatalf("reset of chunk index = nchunk: %v", st)
		}
	})
	t.Run("wear-out takes the chunk offline", func(t *testing.T) {
		r := newRig(t, Config{Options: Options{Endurance: 3}})
		q := r.ioQueue(1, 16, -1)
		for i := 0; i < 2; i++ {
			fill(r, q, 0, 0, 0)
			if st := r.reset(q, r.lba(0, 0, 0, 0)).Status; st != 0 {
				t.Fatal(st)
			}
		}
		fill(r, q, 0, 0, 0)
		if st := r.reset(q, r.lba(0, 0, 0, 0)).Status; st.Code() != StatusOfflineChunk || r.chunk(0, 0, 0).WI != 255 {
			t.Fatalf("third reset of a 3-cycle chunk: %v %v", st, r.chunk(0, 0, 0))
		}
	})
	t.Run("MPTR gets the updated descriptors", func(t *testing.T) {
		r := newRig(t, Config{})
		q := r.ioQueue(1, 16, -1)
		fill(r, q, 1, 1, 1)
		c := r.vecCmd(IOVectorReset, []uint64{r.lba(1, 1, 1, 0)}, 0)
		c.MPTR = r.alloc(ChunkDescriptorSize)
		if st := r.cmd(q, c).Status; st != 0 {
			t.Fatal(st)
		}
		b := make([]byte, ChunkDescriptorSize)
		r.ga.ReadGPA(c.MPTR, b)
		if d, _ := ParseDescriptor(b); d.State != ChunkFree || d.WP != 0 || d.SLBA != r.lba(1, 1, 1, 0) {
			t.Fatalf("descriptor at MPTR: %+v", d)
		}
	})
}

// Check 6: read rules, with DULBE off (predefined zeroes) and on.
func TestReadRules(t *testing.T) {
	for _, dulbe := range []bool{false, true} {
		r := newRig(t, Config{Options: Options{DULBE: dulbe}})
		q := r.ioQueue(1, 16, -1)
		// Chunk 0: OPEN with wp 12 (mw_cunits 8: sectors 0-3 readable).
		r.write(q, r.seq(0, 0, 0, 0, 12)...)
		// Chunk 1: CLOSED.
		fill(r, q, 0, 0, 1)
		cases := []struct {
			name     string
			lba      uint64
			readable bool
		}{
			{"OPEN below wp-mw_cunits", r.lba(0, 0, 0, 3), true},
			{"OPEN at wp-mw_cunits", r.lba(0, 0, 0, 4), false},
			{"OPEN inside the last mw_cunits", r.lba(0, 0, 0, 11), false},
			{"OPEN beyond wp", r.lba(0, 0, 0, 12), false},
			{"CLOSED below wp", r.lba(0, 0, 1, 31), true},
			{"FREE", r.lba(0, 0, 2, 0), false},
			{"nonexistent", r.lba(0, 0, 0, 0) | 1<<50, false},
		}
		for _, c := range cases {
			cqe, data := r.read(q, c.lba)
			switch {
			case c.readable:
				if cqe.Status != 0 || !bytes.Equal(data, Pattern(c.lba, 4096)) {
					t.Errorf("dulbe=%v %s: status %v, data matches %v", dulbe, c.name, cqe.Status, bytes.Equal(data, Pattern(c.lba, 4096)))
				}
			case dulbe:
				if cqe.Status != StatusDULB || cqe.Result != 1 {
					t.Errorf("dulbe=%v %s: status %v result %#x, want DULB bit 0", dulbe, c.name, cqe.Status, cqe.Result)
				}
			default:
				if cqe.Status != 0 || !bytes.Equal(data, make([]byte, 4096)) {
					t.Errorf("dulbe=%v %s: status %v, want predefined zeroes", dulbe, c.name, cqe.Status)
				}
			}
		}
		// liblightnvm's mw_cunits rule: after ws_min more sectors, sector 4
		// of chunk 0 reads back.
		r.write(q, r.seq(0, 0, 0, 12, 4)...)
		if cqe, data := r.read(q, r.lba(0, 0, 0, 4)); cqe.Status != 0 || !bytes.Equal(data, Pattern(r.lba(0, 0, 0, 4), 4096)) {
			t.Errorf("dulbe=%v: sector 4 after wp moved past it by mw_cunits: %v", dulbe, cqe.Status)
		}
	}
}

// Check 7: vector limits and the per-LBA failure bitmap.
func TestVectorLimits(t *testing.T) {
	r := newRig(t, Config{Geometry: func() Geometry { g := smallGeometry(); g.CLBA = 128; g.MWCunit = 0; return g }()})
	q := r.ioQueue(1, 16, -1)
	if st := r.write(q, r.seq(0, 0, 0, 0, 64)...).Status; st != 0 {
		t.Fatalf("64 LBAs (nlb 63): %v", st)
	}
	c := r.vecCmd(IOVectorRead, r.seq(0, 0, 0, 0, 64), r.alloc(64*4096))
	c.CDW12 = 64 // 65 LBAs
	if st := r.cmd(q, c).Status; st != StatusInvalidField|StatusDNR {
		t.Fatalf("nlb 64: %v, want invalid field", st)
	}
	c.CDW12 = 0xffff
	if st := r.cmd(q, c).Status; st != StatusInvalidField|StatusDNR {
		t.Fatalf("nlb 65535: %v", st)
	}
	// Partial failure: a vector read over readable and unreadable sectors
	// with DULBE marks exactly the unreadable indices.
	r2 := newRig(t, Config{Options: Options{DULBE: true}})
	q2 := r2.ioQueue(1, 16, -1)
	fill(r2, q2, 0, 0, 0)
	var lbas []uint64
	var want uint64
	for i := 0; i < 64; i++ {
		if i%3 == 0 {
			lbas = append(lbas, r2.lba(1, 0, 0, i%32)) // FREE chunk
			want |= 1 << i
		} else {
			lbas = append(lbas, r2.lba(0, 0, 0, i%32))
		}
	}
	cqe, data := r2.read(q2, lbas...)
	if cqe.Result != want || cqe.Status != StatusDULB {
		t.Fatalf("bitmap %#x status %v, want %#x DULB", cqe.Result, cqe.Status, want)
	}
	for i, l := range lbas {
		if want&(1<<i) == 0 && !bytes.Equal(data[i*4096:(i+1)*4096], Pattern(l, 4096)) {
			t.Fatalf("LBA index %d data wrong", i)
		}
	}
	// A vector write half into a good chunk, half into a CLOSED one.
	w := append(r2.seq(1, 1, 0, 0, 4), r2.seq(0, 0, 0, 0, 4)...)
	if cqe := r2.write(q2, w...); cqe.Result != 0xf0 || cqe.Status != StatusWriteFault {
		t.Fatalf("mixed vector write: bitmap %#x status %v", cqe.Result, cqe.Status)
	}
}

// Check 8: error injection: write failure → early close → reset offline.
func TestErrorInjection(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 16, -1)
	r.write(q, r.seq(0, 1, 2, 0, 4)...)
	if err := r.dev.InjectWriteFailure(Addr{Group: 0, PU: 1, Chunk: 2, Sector: 9}); err != nil {
		t.Fatal(err)
	}
	cqe := r.write(q, r.seq(0, 1, 2, 4, 8)...)
	// Sectors 4-7 (one write unit) land; the unit holding sector 9 and
	// everything after it in the command fail.
	if cqe.Status != StatusChunkEarlyClose || cqe.Result != 0xf0 {
		t.Fatalf("injected failure: %v bitmap %#x", cqe.Status, cqe.Result)
	}
	if c := r.chunk(0, 1, 2); c.State != ChunkClosed || c.WP != 8 {
		t.Fatalf("after early close: %v, want CLOSED wp 8", c)
	}
	if cqe, data := r.read(q, r.lba(0, 1, 2, 7)); cqe.Status != 0 || !bytes.Equal(data, Pattern(r.lba(0, 1, 2, 7), 4096)) {
		t.Fatalf("sector before the failure: %v", cqe.Status)
	}
	if st := r.reset(q, r.lba(0, 1, 2, 0)).Status; st != StatusOfflineChunk {
		t.Fatalf("reset after early close: %v", st)
	}
	log, _ := r.reportChunks(r.dev.geo.ChunkIndex(Addr{Group: 0, PU: 1, Chunk: 2}), 1)
	if log[0].State != ChunkOffline {
		t.Fatalf("report chunk after: %v", log[0])
	}
	if err := r.dev.InjectWriteFailure(Addr{Group: 9}); err == nil {
		t.Fatal("injection outside the geometry accepted")
	}
	// Reset failure and high ECC.
	fill(r, q, 1, 1, 1)
	r.dev.InjectResetFailure(Addr{Group: 1, PU: 1, Chunk: 1})
	if st := r.reset(q, r.lba(1, 1, 1, 0)).Status; st != StatusOfflineChunk {
		t.Fatalf("injected reset failure: %v", st)
	}
	fill(r, q, 1, 0, 0)
	r.dev.InjectHighECC(Addr{Group: 1, PU: 0, Chunk: 0, Sector: 5})
	cqe, data := r.read(q, r.seq(1, 0, 0, 4, 2)...)
	if cqe.Status != StatusReadHighECC || cqe.Result != 2 || !bytes.Equal(data[4096:], Pattern(r.lba(1, 0, 0, 5), 4096)) {
		t.Fatalf("high ECC: %v %#x", cqe.Status, cqe.Result)
	}
}

// Check 9: the timing model honours the advertised typical and maximum
// latencies.
func TestTimingModel(t *testing.T) {
	g := smallGeometry()
	g.WriteTyp, g.WriteMax, g.ReadTyp, g.ReadMax, g.ResetTyp, g.ResetMax = 2e6, 4e6, 1e6, 2e6, 3e6, 6e6
	r := newRig(t, Config{Geometry: g, Timing: true, Seed: 1})
	q := r.ioQueue(1, 16, -1)
	measure := func(c Command) time.Duration {
		start := time.Now()
		r.cmd(q, c)
		return time.Since(start)
	}
	const slack = 250 * time.Millisecond // scheduler noise on a shared host; the lower bound is exact
	for i := 0; i < 4; i++ {
		w := measure(r.vecCmd(IOVectorWrite, r.seq(0, 0, 0, 8*i, 8), r.alloc(8*4096)))
		rd := measure(r.vecCmd(IOVectorRead, r.seq(0, 0, 0, 0, 1), r.alloc(4096)))
		for _, c := range []struct {
			name     string
			got      time.Duration
			typ, max uint32
		}{{"write", w, g.WriteTyp, g.WriteMax}, {"read", rd, g.ReadTyp, g.ReadMax}} {
			if c.got < time.Duration(c.typ) || c.got > time.Duration(c.max)+slack {
				t.Errorf("%s took %v, want in [%v, %v]", c.name, c.got, time.Duration(c.typ), time.Duration(c.max))
			}
		}
	}
	if d := measure(r.vecCmd(IOVectorReset, []uint64{r.lba(0, 0, 0, 0)}, 0)); d < 3*time.Millisecond {
		t.Errorf("reset took %v, below its typical 3ms", d)
	}
	if bits.OnesCount64(uint64(r.dev.Stats().Completed)) == 0 {
		t.Fatal("no completions counted")
	}
}

// OCSSD 1.2 mode: PPA addressing, 1.2 status codes, the bad-block table.
func TestVersion12Device(t *testing.T) {
	r := newRig(t, Config{Geometry: geometry12()})
	g := r.dev.geo
	if g.CLBA != 64 || g.WSMin != 4 {
		t.Fatalf("derived geometry %+v", g)
	}
	q := r.ioQueue(1, 16, -1)
	// Program block 3 of ch 1 lun 2, page by page (4 sectors each).
	lbas := r.seq(1, 2, 3, 0, 8)
	if a, ok := g.DecodePPA(lbas[5]); !ok || a != (Addr{Group: 1, PU: 2, Chunk: 3, Sector: 5}) {
		t.Fatalf("PPA round trip: %v %v", a, ok)
	}
	if st := r.write(q, lbas...).Status; st != 0 {
		t.Fatalf("1.2 write: %v", st)
	}
	if st := r.write(q, r.seq(1, 2, 3, 12, 4)...).Status; st != Status12FailWrite {
		t.Fatalf("1.2 out-of-order program: %v, want %v", st, Status12FailWrite)
	}
	fill := r.seq(1, 2, 3, 8, 56)
	if st := r.write(q, fill...).Status; st != 0 {
		t.Fatal(st)
	}
	if cqe, data := r.read(q, lbas[2]); cqe.Status != 0 || !bytes.Equal(data, Pattern(lbas[2], 4096)) {
		t.Fatalf("1.2 read: %v", cqe.Status)
	}
	if cqe, _ := r.read(q, r.lba(0, 0, 0, 0)); cqe.Status != Status12EmptyPage || cqe.Result != 1 {
		t.Fatalf("1.2 read of an erased page: %v", cqe.Status)
	}
	// Grow a bad block and find it in the table.
	r.dev.InjectResetFailure(Addr{Group: 1, PU: 2, Chunk: 3})
	r.reset(q, r.lba(1, 2, 3, 0))
	buf := r.alloc(4096)
	if st := r.cmd(r.adm, Command{Opcode: AdminGetBadBlocks, NSID: 1, PRP1: buf, CDW10: uint32(r.lba(1, 2, 0, 0))}).Status; st != 0 {
		t.Fatal(st)
	}
	tbl := make([]byte, bbtHeaderSize+32)
	r.ga.ReadGPA(buf, tbl)
	le := binary.LittleEndian
	if string(tbl[:4]) != "BBLT" || le.Uint16(tbl[4:]) != 1 || le.Uint32(tbl[12:]) != uint32(g.Blocks*g.Planes) {
		t.Fatalf("table header % x", tbl[:24])
	}
	for i, b := range tbl[bbtHeaderSize : bbtHeaderSize+32] {
		want := byte(BlockFree)
		if i/2 == 3 {
			want = BlockGrownBad
		}
		if b != want {
			t.Fatalf("block %d plane %d: %d, want %d", i/2, i%2, b, want)
		}
	}
}

// Random (W_RAN) chunks: writes anywhere below cnlb, in any unit size;
// any sector of an OPEN chunk reads (unwritten ones as zeroes).
func TestRandomChunks(t *testing.T) {
	r := newRig(t, Config{Options: Options{RandomChunks: []int{5}}})
	q := r.ioQueue(1, 16, -1)
	a := Addr{Group: 0, PU: 1, Chunk: 1} // index 5
	if ci := r.dev.geo.ChunkIndex(a); ci != 5 {
		t.Fatalf("index %d", ci)
	}
	cases := []struct {
		name string
		lbas []uint64
		want Status
	}{
		{"past the write pointer", r.seq(0, 1, 1, 20, 2), 0},
		{"before it again", r.seq(0, 1, 1, 3, 1), 0},
		{"overwrite", r.seq(0, 1, 1, 20, 1), 0},
		{"the last sector (wp reaches cnlb: CLOSED)", r.seq(0, 1, 1, 31, 1), 0},
	}
	for _, c := range cases {
		if st := r.write(q, c.lbas...).Status; st != c.want {
			t.Errorf("%s: %v, want %v", c.name, st, c.want)
		}
	}
	if c := r.chunk(0, 1, 1); c.Type != ChunkRandom || c.State != ChunkClosed || c.WP != 32 {
		t.Fatalf("random chunk after writes: %+v", c)
	}
	for _, s := range []int{3, 20, 21} {
		if cqe, data := r.read(q, r.lba(0, 1, 1, s)); cqe.Status != 0 || !bytes.Equal(data, Pattern(r.lba(0, 1, 1, s), 4096)) {
			t.Errorf("sector %d: %v", s, cqe.Status)
		}
	}
	if cqe, data := r.read(q, r.lba(0, 1, 1, 10)); cqe.Status != 0 || !bytes.Equal(data, make([]byte, 4096)) {
		t.Errorf("unwritten sector of a random chunk: %v", cqe.Status)
	}
	log, _ := r.reportChunks(5, 1)
	if log[0].Type != ChunkRandom {
		t.Fatalf("report chunk type %#x", log[0].Type)
	}
	_, ga := newMemAccess(t)
	if _, err := New(ga, nil, Config{Geometry: smallGeometry(), Options: Options{RandomChunks: []int{16}}}); err == nil {
		t.Fatal("random chunk index past the geometry accepted")
	}
}
