package lightnvm

import (
	"encoding/binary"
	"fmt"
)

// Status is an NVMe completion status in qemu's encoding: status code
// type in bits 10:8, status code in 7:0, Do Not Retry in bit 14 (the CQE
// status field without its phase bit).
type Status uint16

// Status codes (NVMe base specification, OCSSD 2.0 media errors with SCT 2).
const (
	StatusSuccess           Status = 0x0000
	StatusInvalidOpcode     Status = 0x0001
	StatusInvalidField      Status = 0x0002
	StatusDataTransferError Status = 0x0004
	StatusInternalError     Status = 0x0006
	StatusAbortedSQDeleted  Status = 0x0008
	StatusInvalidNamespace  Status = 0x000b
	StatusLBAOutOfRange     Status = 0x0080
	// Command specific (SCT 1).
	StatusInvalidCQ        Status = 0x0100
	StatusInvalidQID       Status = 0x0101
	StatusInvalidQSize     Status = 0x0102
	StatusInvalidIntVector Status = 0x0108
	StatusInvalidLogPage   Status = 0x0109
	StatusInvalidQDeletion Status = 0x010c
	// Media and data integrity (SCT 2), OCSSD 2.0 codes from 0xC0.
	StatusWriteFault      Status = 0x0280
	StatusDULB            Status = 0x0287 // deallocated or unwritten logical block
	StatusOfflineChunk    Status = 0x02c0
	StatusInvalidReset    Status = 0x02c1
	StatusReadHighECC     Status = 0x02d0
	StatusWriteNextUnit   Status = 0x02f0
	StatusChunkEarlyClose Status = 0x02f1
	StatusOutOfOrderWrite Status = 0x02f2
	// StatusDNR is the Do Not Retry bit.
	StatusDNR Status = 0x4000

	// OCSSD 1.2 codes (include/linux/lightnvm.h), DNR included as there.
	Status12FailWrite  Status = 0x40ff
	Status12EmptyPage  Status = 0x42ff
	Status12FailECC    Status = 0x4281
	Status12WarnHighEC Status = 0x4700
)

// Code is the status without the DNR bit.
func (s Status) Code() Status { return s &^ StatusDNR }

// DNR reports whether the Do Not Retry bit is set.
func (s Status) DNR() bool { return s&StatusDNR != 0 }

func (s Status) String() string {
	names := map[Status]string{
		StatusSuccess: "success", StatusInvalidOpcode: "invalid opcode", StatusInvalidField: "invalid field",
		StatusDataTransferError: "data transfer error", StatusInternalError: "internal error",
		StatusAbortedSQDeleted: "aborted (SQ deleted)", StatusInvalidNamespace: "invalid namespace",
		StatusLBAOutOfRange: "LBA out of range", StatusInvalidCQ: "completion queue invalid",
		StatusInvalidQID: "invalid queue identifier", StatusInvalidQSize: "invalid queue size",
		StatusInvalidIntVector: "invalid interrupt vector", StatusInvalidLogPage: "invalid log page",
		StatusInvalidQDeletion: "invalid queue deletion", StatusWriteFault: "write fault", StatusDULB: "deallocated or unwritten block",
		StatusOfflineChunk: "offline chunk", StatusInvalidReset: "invalid reset", StatusReadHighECC: "read high ECC",
		StatusWriteNextUnit: "write fail - write next unit", StatusChunkEarlyClose: "write fail - chunk early close",
		StatusOutOfOrderWrite: "out-of-order write", Status12FailWrite.Code(): "1.2 write failure",
		Status12EmptyPage.Code(): "1.2 empty page",
	}
	n, ok := names[s.Code()]
	if !ok {
		n = "unknown"
	}
	if s.DNR() {
		n += "|dnr"
	}
	return fmt.Sprintf("%#04x (%s)", uint16(s), n)
}

// ChunkState is a chunk's state (OCSSD 2.0 chunk descriptor, one bit each).
type ChunkState uint8

// Chunk states.
const (
	ChunkFree    ChunkState = 1 << 0
	ChunkClosed  ChunkState = 1 << 1
	ChunkOpen    ChunkState = 1 << 2
	ChunkOffline ChunkState = 1 << 3
)

func (s ChunkState) String() string {
	switch s {
	case ChunkFree:
		return "FREE"
	case ChunkClosed:
		return "CLOSED"
	case ChunkOpen:
		return "OPEN"
	case ChunkOffline:
		return "OFFLINE"
	}
	return fmt.Sprintf("state(%#x)", uint8(s))
}

// ChunkType is a chunk's write rule.
type ChunkType uint8

// Chunk types.
const (
	ChunkSeq      ChunkType = 1 << 0 // sequential writes at the write pointer
	ChunkRandom   ChunkType = 1 << 1 // random writes allowed
	ChunkSizeSpec ChunkType = 1 << 4 // cnlb differs from clba
)

// Chunk is one chunk's state: the report-chunk descriptor's fields plus
// what the model tracks behind them.
type Chunk struct {
	State ChunkState
	Type  ChunkType
	WI    uint8  // wear index
	SLBA  uint64 // address of sector 0
	CNLB  uint64 // sectors in the chunk
	WP    uint64 // write pointer
	// PE counts program/erase cycles; the wear index follows it.
	PE uint32
	// ResetFails: a write failed early-closed the chunk, and its next reset
	// takes it offline (qemu's behaviour).
	ResetFails bool
}

func (c Chunk) String() string {
	return fmt.Sprintf("{%v wp %d cnlb %d wi %d}", c.State, c.WP, c.CNLB, c.WI)
}

// ChunkDescriptorSize is struct nvme_nvm_chk_meta's size.
const ChunkDescriptorSize = 32

// Descriptor encodes the report-chunk log entry.
func (c Chunk) Descriptor() [ChunkDescriptorSize]byte {
	var b [ChunkDescriptorSize]byte
	b[0], b[1], b[2] = uint8(c.State), uint8(c.Type), c.WI
	binary.LittleEndian.PutUint64(b[8:], c.SLBA)
	binary.LittleEndian.PutUint64(b[16:], c.CNLB)
	binary.LittleEndian.PutUint64(b[24:], c.WP)
	return b
}

// ParseDescriptor decodes a report-chunk log entry.
func ParseDescriptor(b []byte) (Chunk, error) {
	if len(b) < ChunkDescriptorSize {
		return Chunk{}, fmt.Errorf("chunk descriptor: %d bytes, want %d", len(b), ChunkDescriptorSize)
	}
	le := binary.LittleEndian
	return Chunk{State: ChunkState(b[0]), Type: ChunkType(b[1]), WI: b[2], SLBA: le.Uint64(b[8:]), CNLB: le.Uint64(b[16:]), WP: le.Uint64(b[24:])}, nil
}

// Options are the model's behaviour choices where references disagree or
// a device may choose.
type Options struct {
	// DULBE: reading a deallocated or unwritten block is an error
	// (StatusDULB) instead of returning zeroes (DLFEAT 1).
	DULBE bool
	// Endurance is the erase count at which the wear index reaches 255
	// and a reset takes the chunk offline (default 10000).
	Endurance uint32
	// RandomChunks are chunk indices (report-chunk order) of type W_RAN:
	// writes anywhere below cnlb, reads of any sector of an OPEN or CLOSED
	// chunk. Used when the device starts without a state file (the file
	// records each chunk's type).
	RandomChunks []int
}

// media is the chunk model: every rule of the OCSSD chunk state machine,
// apart from queues and timing. Callers serialize access.
type media struct {
	geo    Geometry
	opt    Options
	chunks []Chunk
	open   int
	openPU []int
	data   sectorStore
	// Error injection, keyed by chunk index: the sector whose write unit
	// fails on the next write covering it; chunks whose next reset fails;
	// sectors whose reads report high ECC.
	writeFail map[int]int
	resetFail map[int]bool
	highECC   map[int]int
}

func newMedia(g Geometry, opt Options, data sectorStore) *media {
	if opt.Endurance == 0 {
		opt.Endurance = 10000
	}
	m := &media{geo: g, opt: opt, chunks: make([]Chunk, g.TotalChunks()), openPU: make([]int, g.Groups*g.PUnits),
		data: data, writeFail: map[int]int{}, resetFail: map[int]bool{}, highECC: map[int]int{}}
	for i := range m.chunks {
		m.chunks[i] = Chunk{State: ChunkFree, Type: ChunkSeq, CNLB: uint64(g.CLBA), SLBA: g.Encode(m.addrOf(i, 0))}
	}
	for _, ci := range opt.RandomChunks {
		if ci >= 0 && ci < len(m.chunks) {
			m.chunks[ci].Type = ChunkRandom
		}
	}
	return m
}

func (m *media) addrOf(ci, sector int) Addr {
	g := m.geo
	return Addr{Group: ci / (g.PUnits * g.Chunks), PU: ci / g.Chunks % g.PUnits, Chunk: ci % g.Chunks, Sector: sector}
}

// recount rebuilds the open-chunk counters (after loading state).
func (m *media) recount() {
	m.open = 0
	clear(m.openPU)
	for i, c := range m.chunks {
		if c.State == ChunkOpen {
			m.open++
			m.openPU[i/m.geo.Chunks]++
		}
	}
}

func (m *media) setState(ci int, s ChunkState) {
	c := &m.chunks[ci]
	if c.State == ChunkOpen {
		m.open--
		m.openPU[ci/m.geo.Chunks]--
	}
	if s == ChunkOpen {
		m.open++
		m.openPU[ci/m.geo.Chunks]++
	}
	c.State = s
}

// vecResult is a vector command's outcome: the first failure's status and
// the bitmap of failed LBA indices (the CQE's 64-bit result).
type vecResult struct {
	status Status
	failed uint64
}

func (r *vecResult) fail(i int, s Status) {
	r.failed |= 1 << uint(i)
	if r.status == StatusSuccess {
		r.status = s
	}
}

// run is a stretch of a vector command's LBA list inside one chunk.
type run struct {
	first, n int // indices in the LBA list
	ci       int
	start    int // sector of the first LBA
	ok       bool
}

// runs groups a decoded LBA list into per-chunk runs; a run whose
// sectors are not consecutive and ascending has ok false.
func (m *media) runs(addrs []Addr, valid []bool) []run {
	var out []run
	for i := 0; i < len(addrs); {
		if !valid[i] {
			out = append(out, run{first: i, n: 1, ci: -1})
			i++
			continue
		}
		r := run{first: i, n: 1, ci: m.geo.ChunkIndex(addrs[i]), start: addrs[i].Sector, ok: true}
		for i+r.n < len(addrs) && valid[i+r.n] && m.geo.ChunkIndex(addrs[i+r.n]) == r.ci {
			if addrs[i+r.n].Sector != r.start+r.n {
				r.ok = false
			}
			r.n++
		}
		out = append(out, r)
		i += r.n
	}
	return out
}

func (m *media) decode(lbas []uint64) ([]Addr, []bool) {
	addrs, valid := make([]Addr, len(lbas)), make([]bool, len(lbas))
	for i, l := range lbas {
		addrs[i], valid[i] = m.geo.Decode(l)
	}
	return addrs, valid
}

func (m *media) sectorOffset(ci, sector int) int64 {
	return (int64(ci)*int64(m.geo.CLBA) + int64(sector)) * int64(m.geo.SectorSize)
}

// write applies a vector write: data holds len(lbas) sectors in list
// order. It returns the outcome and whether chunk state changed.
func (m *media) write(lbas []uint64, data []byte) (vecResult, error) {
	var res vecResult
	addrs, valid := m.decode(lbas)
	ss := m.geo.SectorSize
	for _, r := range m.runs(addrs, valid) {
		failRun := func(s Status) {
			for i := r.first; i < r.first+r.n; i++ {
				res.fail(i, s)
			}
		}
		if r.ci < 0 {
			failRun(StatusWriteFault | StatusDNR) // no such chunk
			continue
		}
		c := &m.chunks[r.ci]
		switch {
		case c.State == ChunkOffline || c.State == ChunkClosed:
			failRun(StatusWriteFault)
			continue
		case uint64(r.start)+uint64(r.n) > c.CNLB:
			failRun(StatusWriteFault)
			continue
		case !r.ok:
			failRun(StatusOutOfOrderWrite | StatusDNR)
			continue
		}
		if c.Type&ChunkRandom == 0 {
			if r.n%m.geo.WSMin != 0 {
				failRun(StatusInvalidField)
				continue
			}
			if uint64(r.start) != c.WP {
				failRun(StatusOutOfOrderWrite | StatusDNR)
				continue
			}
		}
		if c.State == ChunkFree && (m.open >= m.geo.MaxOC || m.openPU[r.ci/m.geo.Chunks] >= m.geo.MaxOCPU) {
			failRun(StatusWriteFault | StatusDNR) // too many open chunks
			continue
		}
		// An injected failure fails the write unit holding its sector and
		// everything after it in the run; earlier units are written.
		good := r.n
		fs, inject := m.writeFail[r.ci]
		if inject && fs >= r.start && fs < r.start+r.n {
			good = (fs - r.start) / m.geo.WSMin * m.geo.WSMin
			delete(m.writeFail, r.ci)
		} else {
			inject = false
		}
		for k := 0; k < good; k++ {
			i := r.first + k
			if _, err := m.data.WriteAt(data[i*ss:(i+1)*ss], m.sectorOffset(r.ci, r.start+k)); err != nil {
				return res, fmt.Errorf("write sector %d of chunk %d: %w", r.start+k, r.ci, err)
			}
		}
		if good > 0 && c.State == ChunkFree {
			m.setState(r.ci, ChunkOpen)
		}
		if c.Type&ChunkRandom == 0 || uint64(r.start+good) > c.WP {
			c.WP = uint64(r.start + good)
		}
		if inject {
			m.setState(r.ci, ChunkClosed)
			c.ResetFails = true
			for i := r.first + good; i < r.first+r.n; i++ {
				res.fail(i, StatusChunkEarlyClose)
			}
			continue
		}
		if c.WP == c.CNLB {
			m.setState(r.ci, ChunkClosed)
		}
	}
	return res, nil
}

// readable reports whether a sector holds data the host may read.
func (m *media) readable(a Addr, ok bool) bool {
	if !ok {
		return false
	}
	c := m.chunks[m.geo.ChunkIndex(a)]
	s := uint64(a.Sector)
	if c.Type&ChunkRandom != 0 {
		return (c.State == ChunkOpen || c.State == ChunkClosed) && s < c.CNLB
	}
	switch c.State {
	case ChunkClosed:
		return s < c.WP
	case ChunkOpen:
		// The last mw_cunits written sectors may still be in the device's
		// write cache and are not readable yet.
		return c.WP >= uint64(m.geo.MWCunit) && s < c.WP-uint64(m.geo.MWCunit)
	}
	return false
}

// read fills out (len(lbas) sectors) from a vector read; unreadable
// sectors read as zeroes, or fail with DULB when DULBE is on.
func (m *media) read(lbas []uint64, out []byte) (vecResult, error) {
	var res vecResult
	addrs, valid := m.decode(lbas)
	ss := m.geo.SectorSize
	for i := range lbas {
		buf := out[i*ss : (i+1)*ss]
		if !m.readable(addrs[i], valid[i]) {
			clear(buf)
			if m.opt.DULBE {
				res.fail(i, StatusDULB)
			}
			continue
		}
		ci := m.geo.ChunkIndex(addrs[i])
		if err := m.data.ReadSector(buf, m.sectorOffset(ci, addrs[i].Sector)); err != nil {
			return res, fmt.Errorf("read sector %d of chunk %d: %w", addrs[i].Sector, ci, err)
		}
		if s, ok := m.highECC[ci]; ok && s == addrs[i].Sector {
			res.fail(i, StatusReadHighECC) // data returned, but flagged
		}
	}
	return res, nil
}

// reset applies a vector chunk reset (the sector bits of each LBA are
// ignored). It returns the outcome.
func (m *media) reset(lbas []uint64) vecResult {
	var res vecResult
	addrs, valid := m.decode(lbas)
	for i := range lbas {
		if !valid[i] {
			res.fail(i, StatusInvalidReset) // no such chunk
			continue
		}
		ci := m.geo.ChunkIndex(addrs[i])
		c := &m.chunks[ci]
		switch c.State {
		case ChunkOffline:
			res.fail(i, StatusOfflineChunk)
			continue
		case ChunkFree:
			if m.geo.MCCAP&MCCAPMultiReset == 0 {
				res.fail(i, StatusInvalidReset)
				continue
			}
		case ChunkOpen:
			if m.geo.MCCAP&MCCAPEarlyReset == 0 {
				res.fail(i, StatusInvalidReset)
				continue
			}
		}
		if c.ResetFails || m.resetFail[ci] {
			delete(m.resetFail, ci)
			c.ResetFails = false
			m.setState(ci, ChunkOffline)
			res.fail(i, StatusOfflineChunk)
			continue
		}
		c.PE++
		wi := uint64(c.PE) * 255 / uint64(m.opt.Endurance)
		c.WI = uint8(min(wi, 255))
		c.WP = 0
		if c.WI == 255 {
			m.setState(ci, ChunkOffline)
			res.fail(i, StatusOfflineChunk)
			continue
		}
		m.setState(ci, ChunkFree)
	}
	return res
}

// log returns length bytes of the report-chunk log from offset; an
// offset beyond the log is StatusInvalidField. Bytes past the log's end
// read as zeroes.
func (m *media) log(offset, length uint64) ([]byte, Status) {
	size := uint64(len(m.chunks)) * ChunkDescriptorSize
	if offset > size {
		return nil, StatusInvalidField
	}
	out := make([]byte, length)
	for at := uint64(0); at < length && offset+at < size; {
		idx := (offset + at) / ChunkDescriptorSize
		d := m.chunks[idx].Descriptor()
		k := copy(out[at:], d[(offset+at)%ChunkDescriptorSize:])
		at += uint64(k)
	}
	return out, StatusSuccess
}

// Bad-block table (OCSSD 1.2 get bad block table, admin 0xF2).
const (
	bbtHeaderSize = 64
	BlockFree     = 0
	BlockBad      = 1
	BlockGrownBad = 2
)

// badBlockTable encodes the 1.2 table of one LUN: "BBLT", verid 1,
// tblks = blocks × planes, one byte per (block, plane); offline chunks
// are grown bad blocks.
func (m *media) badBlockTable(ch, lun int) []byte {
	g := m.geo
	n := g.Blocks * g.Planes
	b := make([]byte, bbtHeaderSize+n)
	copy(b, "BBLT")
	binary.LittleEndian.PutUint16(b[4:], 1)
	binary.LittleEndian.PutUint32(b[12:], uint32(n))
	grown := 0
	for blk := 0; blk < g.Blocks; blk++ {
		if m.chunks[g.ChunkIndex(Addr{Group: ch, PU: lun, Chunk: blk})].State == ChunkOffline {
			grown++
			for p := 0; p < g.Planes; p++ {
				b[bbtHeaderSize+blk*g.Planes+p] = BlockGrownBad
			}
		}
	}
	binary.LittleEndian.PutUint32(b[20:], uint32(grown*g.Planes)) // tgrown
	return b
}

// Pattern is the deterministic content of one LBA's sector (n bytes) that
// this package's tests and the lightnvm suite write and verify: every
// 8-byte word depends on the LBA and its offset, so a sector landing at
// the wrong address or a torn transfer shows.
func Pattern(lba uint64, n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], lba*0x9e3779b97f4a7c15^uint64(i))
	}
	return b
}
