// Package lightnvm is an Open-Channel SSD (OCSSD 2.0, with an OCSSD 1.2
// geometry mode) behind an NVMe-style controller: admin and I/O queue
// pairs in guest memory with doorbells in an MMIO register block, I/O
// completion queues with or without interrupts (poll queues have none),
// the OCSSD chunk model (states, write pointer, write-unit rules, open
// chunk limits), the report-chunk log, vector reset/write/read of up to
// 64 LBAs with the per-LBA failure bitmap in the completion, error
// injection, a media timing model, chunk state persisted in a backing
// file, and the kernel's sysfs geometry tree written as files.
//
// The device is backend-neutral: it implements hv.Device and reaches the
// guest only through hv.GuestMemory and hv.Interrupts. Every field a
// guest writes (queue entries, LBA lists, doorbells, registers) is
// untrusted: a bad value gets the NVMe status the specifications give,
// never a panic. The facts it follows are in
// ../shared/reference/devices.md parts (b) and (d); docs/lightnvm.md
// describes the register block and the model's choices.
package lightnvm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
)

// Version is an OCSSD specification revision.
type Version string

// Supported revisions.
const (
	V12 Version = "1.2"
	V20 Version = "2.0"
)

// Geometry is an OCSSD's configuration, in the kernel's sysfs names (the
// JSON keys are the attribute names of /sys/block/<ns>/lightnvm/). A 2.0
// device sets groups, punits, chunks and clba directly; a 1.2 device sets
// num_channels, num_luns, num_blocks, num_planes, num_pages and
// page_size, and the 2.0 view is derived from them as the kernel's
// nvme_nvm_setup_12 derives it. Timings are nanoseconds (struct nvm_geo).
type Geometry struct {
	Version Version `json:"version"`

	// 2.0 geometry (derived for 1.2).
	Groups  int `json:"groups,omitempty"`
	PUnits  int `json:"punits,omitempty"`
	Chunks  int `json:"chunks,omitempty"`
	CLBA    int `json:"clba,omitempty"`
	WSMin   int `json:"ws_min,omitempty"`
	WSOpt   int `json:"ws_opt,omitempty"`
	MWCunit int `json:"mw_cunits,omitempty"`
	MaxOC   int `json:"maxoc,omitempty"`
	MaxOCPU int `json:"maxocpu,omitempty"`

	// Sector and out-of-band sizes in bytes (csecs, sos).
	SectorSize int `json:"hw_sector_size"`
	OOBSize    int `json:"oob_sector_size,omitempty"`

	// MCCAP is the media and controller capabilities (MCCAPMultiReset,
	// MCCAPEarlyReset).
	MCCAP uint32 `json:"media_capabilities,omitempty"`
	// Capabilities is the 1.2 identity's cap field (0 for 2.0, as the
	// kernel leaves it).
	Capabilities uint32 `json:"capabilities,omitempty"`

	// Timings in ns: read, write (program) and reset (erase), typical and
	// maximum.
	ReadTyp  uint32 `json:"read_typ"`
	ReadMax  uint32 `json:"read_max"`
	WriteTyp uint32 `json:"write_typ,omitempty"`
	WriteMax uint32 `json:"write_max,omitempty"`
	ResetTyp uint32 `json:"reset_typ,omitempty"`
	ResetMax uint32 `json:"reset_max,omitempty"`

	// 1.2 geometry.
	Channels       int    `json:"num_channels,omitempty"`
	LUNs           int    `json:"num_luns,omitempty"`
	Planes         int    `json:"num_planes,omitempty"`
	Blocks         int    `json:"num_blocks,omitempty"`
	Pages          int    `json:"num_pages,omitempty"`
	PageSize       int    `json:"page_size,omitempty"`
	MPOS           uint32 `json:"multiplane_modes,omitempty"`
	MediaType      uint8  `json:"media_type,omitempty"`
	FlashMediaType uint8  `json:"flash_media_type,omitempty"`
	VendorOpcode   uint8  `json:"vendor_opcode,omitempty"`
	DeviceMode     uint32 `json:"device_mode,omitempty"`
	ProgTyp        uint32 `json:"prog_typ,omitempty"`
	ProgMax        uint32 `json:"prog_max,omitempty"`
	EraseTyp       uint32 `json:"erase_typ,omitempty"`
	EraseMax       uint32 `json:"erase_max,omitempty"`
}

// MCCAP bits. The 2.0 specification defines bit 1 (a reset of a FREE
// chunk is allowed); bit 2 is this model's flag for the OPEN-chunk reset
// that qemu-nvme allows by default (learly_reset) and liblightnvm expects
// to fail: the references disagree, so the model makes it an option.
const (
	MCCAPVectorCopy = 1 << 0
	MCCAPMultiReset = 1 << 1
	MCCAPEarlyReset = 1 << 2
)

// Limits the model accepts, so a geometry file cannot make it allocate
// without bound.
const (
	maxChunksTotal = 1 << 20
	maxCLBA        = 1 << 24
	// MaxVectorLBAs is NVM_MAX_VLBA: LBAs per vector command.
	MaxVectorLBAs = 64
)

// LoadGeometry reads a geometry JSON file; unknown keys are errors, so a
// misspelt attribute is not silently a default.
func LoadGeometry(path string) (Geometry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Geometry{}, fmt.Errorf("read geometry: %w", err)
	}
	g, err := ParseGeometry(b)
	if err != nil {
		return Geometry{}, fmt.Errorf("geometry %s: %w", path, err)
	}
	return g, nil
}

// ParseGeometry decodes and normalizes a geometry.
func ParseGeometry(b []byte) (Geometry, error) {
	var g Geometry
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return Geometry{}, fmt.Errorf("decode: %w", err)
	}
	return g.Normalize()
}

// Normalize checks g and fills what its version derives: for 1.2 the 2.0
// view (clba, ws_min, ws_opt, mw_cunits, maxoc, maxocpu) exactly as
// nvme_nvm_setup_12 computes it.
func (g Geometry) Normalize() (Geometry, error) {
	if g.SectorSize < 512 || g.SectorSize > 1<<16 || g.SectorSize&(g.SectorSize-1) != 0 {
		return g, fmt.Errorf("hw_sector_size %d: want a power of two in [512, 65536]", g.SectorSize)
	}
	switch g.Version {
	case V12:
		if err := g.normalize12(); err != nil {
			return g, err
		}
	case V20:
		if g.Channels|g.LUNs|g.Planes|g.Blocks|g.Pages|g.PageSize != 0 {
			return g, fmt.Errorf("version 2.0: the 1.2 geometry keys (num_channels …) do not apply")
		}
		g.WriteTyp, g.WriteMax = nz(g.WriteTyp, g.ProgTyp), nz(g.WriteMax, g.ProgMax)
		g.ResetTyp, g.ResetMax = nz(g.ResetTyp, g.EraseTyp), nz(g.ResetMax, g.EraseMax)
		g.ProgTyp, g.ProgMax, g.EraseTyp, g.EraseMax = 0, 0, 0, 0
	default:
		return g, fmt.Errorf("version %q: want \"1.2\" or \"2.0\"", g.Version)
	}
	return g, g.check()
}

func nz(a, b uint32) uint32 {
	if a != 0 {
		return a
	}
	return b
}

func (g *Geometry) normalize12() error {
	for _, f := range []struct {
		name string
		v    int
		max  int
	}{
		{"num_channels", g.Channels, 255}, {"num_luns", g.LUNs, 255}, {"num_planes", g.Planes, 255},
		{"num_blocks", g.Blocks, 65535}, {"num_pages", g.Pages, 65535}, {"page_size", g.PageSize, 65535},
	} {
		if f.v < 1 || f.v > f.max {
			return fmt.Errorf("version 1.2: %s %d out of [1, %d]", f.name, f.v, f.max)
		}
	}
	if g.PageSize%g.SectorSize != 0 {
		return fmt.Errorf("version 1.2: page_size %d is not a multiple of hw_sector_size %d", g.PageSize, g.SectorSize)
	}
	secPerPg := g.PageSize / g.SectorSize
	d := *g
	d.Groups, d.PUnits, d.Chunks = g.Channels, g.LUNs, g.Blocks
	d.CLBA = secPerPg * g.Planes * g.Pages
	d.WSMin, d.WSOpt = secPerPg, secPerPg
	d.MWCunit = d.WSOpt << 3
	switch {
	case g.MPOS&0x020202 != 0:
		d.WSOpt <<= 1
	case g.MPOS&0x040404 != 0:
		d.WSOpt <<= 2
	}
	d.MaxOC = g.Channels * g.LUNs * g.Blocks
	d.MaxOCPU = g.Blocks
	// The 2.0 view is derived; a file may leave it out or repeat it
	// exactly (Normalize is idempotent), never contradict it.
	set := []int{g.Groups, g.PUnits, g.Chunks, g.CLBA, g.WSMin, g.WSOpt, g.MWCunit, g.MaxOC, g.MaxOCPU}
	derived := []int{d.Groups, d.PUnits, d.Chunks, d.CLBA, d.WSMin, d.WSOpt, d.MWCunit, d.MaxOC, d.MaxOCPU}
	for i := range set {
		if set[i] != 0 && set[i] != derived[i] {
			return fmt.Errorf("version 1.2: groups/punits/chunks/clba/ws_*/mw_cunits/maxoc* are derived (%v), the file says %v", derived, set)
		}
	}
	*g = d
	// 1.2 names its write and reset timings program and erase.
	g.WriteTyp, g.WriteMax, g.ResetTyp, g.ResetMax = g.ProgTyp, g.ProgMax, g.EraseTyp, g.EraseMax
	return nil
}

func (g Geometry) check() error {
	switch {
	case g.Groups < 1 || g.Groups > 65535:
		return fmt.Errorf("groups %d out of [1, 65535]", g.Groups)
	case g.PUnits < 1 || g.PUnits > 65535:
		return fmt.Errorf("punits %d out of [1, 65535]", g.PUnits)
	case g.Chunks < 1 || g.CLBA < 1 || g.CLBA > maxCLBA:
		return fmt.Errorf("chunks %d, clba %d: want chunks ≥ 1 and clba in [1, %d]", g.Chunks, g.CLBA, maxCLBA)
	case uint64(g.Groups)*uint64(g.PUnits)*uint64(g.Chunks) > maxChunksTotal:
		return fmt.Errorf("%d×%d×%d chunks: more than the model's %d", g.Groups, g.PUnits, g.Chunks, maxChunksTotal)
	case g.WSMin < 1 || g.WSOpt < g.WSMin || g.WSOpt%g.WSMin != 0:
		return fmt.Errorf("ws_min %d, ws_opt %d: want ws_min ≥ 1 and ws_opt a multiple of ws_min", g.WSMin, g.WSOpt)
	case g.CLBA%g.WSMin != 0:
		return fmt.Errorf("clba %d is not a multiple of ws_min %d: the last write unit could never close the chunk", g.CLBA, g.WSMin)
	case g.MWCunit < 0 || g.MWCunit > g.CLBA:
		return fmt.Errorf("mw_cunits %d out of [0, clba %d]", g.MWCunit, g.CLBA)
	case g.MaxOC < 1 || g.MaxOCPU < 1 || g.MaxOCPU > g.Chunks:
		return fmt.Errorf("maxoc %d, maxocpu %d: want ≥ 1 and maxocpu ≤ chunks %d", g.MaxOC, g.MaxOCPU, g.Chunks)
	case g.ReadTyp > g.ReadMax || g.WriteTyp > g.WriteMax || g.ResetTyp > g.ResetMax:
		return fmt.Errorf("a typical latency exceeds its maximum (read %d/%d, write %d/%d, reset %d/%d)",
			g.ReadTyp, g.ReadMax, g.WriteTyp, g.WriteMax, g.ResetTyp, g.ResetMax)
	}
	if f := g.LBAFormat(); f.GroupLen+f.PULen+f.ChunkLen+f.SectorLen > 64 {
		return fmt.Errorf("LBA format needs %d bits", f.GroupLen+f.PULen+f.ChunkLen+f.SectorLen)
	}
	return nil
}

// TotalChunks is groups × punits × chunks.
func (g Geometry) TotalChunks() int { return g.Groups * g.PUnits * g.Chunks }

// LBAFormat is the 2.0 lbaf: field widths in bits, sector at bit 0, then
// chunk, parallel unit and group (nvme_nvm_set_addr_20).
type LBAFormat struct {
	GroupLen, PULen, ChunkLen, SectorLen uint8
}

// bitsFor is the width that holds 0..n-1.
func bitsFor(n int) uint8 {
	if n <= 1 {
		return 0
	}
	return uint8(bits.Len(uint(n - 1)))
}

// LBAFormat returns the field widths the device advertises.
func (g Geometry) LBAFormat() LBAFormat {
	return LBAFormat{GroupLen: bitsFor(g.Groups), PULen: bitsFor(g.PUnits), ChunkLen: bitsFor(g.Chunks), SectorLen: bitsFor(g.CLBA)}
}

// Addr is a decoded physical address.
type Addr struct {
	Group, PU, Chunk, Sector int
}

func (a Addr) String() string {
	return fmt.Sprintf("grp %d pu %d chk %d sec %d", a.Group, a.PU, a.Chunk, a.Sector)
}

func field(v uint64, off, n uint8) int { return int(v >> off & (1<<n - 1)) }

// DecodeLBA splits a 2.0 LBA; ok is false when the group, PU or chunk
// is beyond the geometry or bits above the format are set. A sector past
// the chunk's end (clba not a power of two) decodes: the chunk rules
// judge it against the chunk's cnlb, as the specification does.
func (g Geometry) DecodeLBA(lba uint64) (Addr, bool) {
	f := g.LBAFormat()
	total := f.SectorLen + f.ChunkLen + f.PULen + f.GroupLen
	if total < 64 && lba>>total != 0 {
		return Addr{}, false
	}
	a := Addr{
		Sector: field(lba, 0, f.SectorLen),
		Chunk:  field(lba, f.SectorLen, f.ChunkLen),
		PU:     field(lba, f.SectorLen+f.ChunkLen, f.PULen),
		Group:  field(lba, f.SectorLen+f.ChunkLen+f.PULen, f.GroupLen),
	}
	return a, a.Group < g.Groups && a.PU < g.PUnits && a.Chunk < g.Chunks
}

// EncodeLBA builds a 2.0 LBA (no range check: tests build bad ones too).
func (g Geometry) EncodeLBA(a Addr) uint64 {
	f := g.LBAFormat()
	return uint64(a.Sector) | uint64(a.Chunk)<<f.SectorLen | uint64(a.PU)<<(f.SectorLen+f.ChunkLen) |
		uint64(a.Group)<<(f.SectorLen+f.ChunkLen+f.PULen)
}

// ChunkIndex is the chunk's position in the report-chunk log
// (grp × num_pu × num_chk + pu × num_chk + chk).
func (g Geometry) ChunkIndex(a Addr) int { return (a.Group*g.PUnits+a.PU)*g.Chunks + a.Chunk }

// PPAFormat is the 1.2 address format (struct nvme_nvm_id12_addrf):
// offset and length of each field.
type PPAFormat struct {
	ChOff, ChLen, LunOff, LunLen, PlnOff, PlnLen, BlkOff, BlkLen, PgOff, PgLen, SecOff, SecLen uint8
}

// PPAFormat returns the 1.2 layout this model uses: sector at bit 0, then
// plane, page, block, LUN and channel (qemu's lnvm order).
func (g Geometry) PPAFormat() PPAFormat {
	var f PPAFormat
	f.SecLen = bitsFor(g.PageSize / g.SectorSize)
	f.PlnOff, f.PlnLen = f.SecOff+f.SecLen, bitsFor(g.Planes)
	f.PgOff, f.PgLen = f.PlnOff+f.PlnLen, bitsFor(g.Pages)
	f.BlkOff, f.BlkLen = f.PgOff+f.PgLen, bitsFor(g.Blocks)
	f.LunOff, f.LunLen = f.BlkOff+f.BlkLen, bitsFor(g.LUNs)
	f.ChOff, f.ChLen = f.LunOff+f.LunLen, bitsFor(g.Channels)
	return f
}

// DecodePPA maps a 1.2 physical page address to the chunk model: the
// block is the chunk and the sector inside it is (page × planes + plane)
// × sectors-per-page + sector, the order pblk programs a block in.
func (g Geometry) DecodePPA(ppa uint64) (Addr, bool) {
	f := g.PPAFormat()
	if top := f.ChOff + f.ChLen; top < 64 && ppa>>top != 0 {
		return Addr{}, false
	}
	ch, lun := field(ppa, f.ChOff, f.ChLen), field(ppa, f.LunOff, f.LunLen)
	blk, pg := field(ppa, f.BlkOff, f.BlkLen), field(ppa, f.PgOff, f.PgLen)
	pln, sec := field(ppa, f.PlnOff, f.PlnLen), field(ppa, f.SecOff, f.SecLen)
	secPerPg := g.PageSize / g.SectorSize
	if ch >= g.Channels || lun >= g.LUNs || blk >= g.Blocks || pg >= g.Pages || pln >= g.Planes || sec >= secPerPg {
		return Addr{}, false
	}
	return Addr{Group: ch, PU: lun, Chunk: blk, Sector: (pg*g.Planes+pln)*secPerPg + sec}, true
}

// EncodePPA is DecodePPA's inverse.
func (g Geometry) EncodePPA(a Addr) uint64 {
	f := g.PPAFormat()
	secPerPg := g.PageSize / g.SectorSize
	sec, rest := a.Sector%secPerPg, a.Sector/secPerPg
	pln, pg := rest%g.Planes, rest/g.Planes
	return uint64(a.Group)<<f.ChOff | uint64(a.PU)<<f.LunOff | uint64(a.Chunk)<<f.BlkOff |
		uint64(pg)<<f.PgOff | uint64(pln)<<f.PlnOff | uint64(sec)<<f.SecOff
}

// Decode maps a command's address in the device's version.
func (g Geometry) Decode(lba uint64) (Addr, bool) {
	if g.Version == V12 {
		return g.DecodePPA(lba)
	}
	return g.DecodeLBA(lba)
}

// Encode is Decode's inverse.
func (g Geometry) Encode(a Addr) uint64 {
	if g.Version == V12 {
		return g.EncodePPA(a)
	}
	return g.EncodeLBA(a)
}

// fingerprint identifies the geometry's shape in the persistence file: a
// state file from another shape is an error, never reinterpreted.
func (g Geometry) fingerprint() uint64 {
	h := uint64(14695981039346656037)
	for _, v := range []uint64{uint64(len(g.Version)), uint64(g.Version[0]), uint64(g.Groups), uint64(g.PUnits), uint64(g.Chunks), uint64(g.CLBA), uint64(g.SectorSize)} {
		h ^= v
		h *= 1099511628211
	}
	return h
}
