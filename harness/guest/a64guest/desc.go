package a64guest

import (
	"fmt"
	"strings"
)

// Stage-1 VMSAv8-64 descriptor bits (Arm ARM D8.3), 48-bit output
// addresses.
const (
	DescValid = 1 << 0
	// DescTable marks a table descriptor at levels 0-2 and a page
	// descriptor at level 3 (where a clear bit is reserved: invalid).
	DescTable = 1 << 1
	DescPage  = DescTable

	DescAttrIndxShift = 2 // AttrIndx[2:0], the MemType
	DescNS            = 1 << 5
	DescAPShift       = 6 // AP[2:1]
	DescSHShift       = 8 // SH[1:0]
	DescAF            = 1 << 10
	DescNG            = 1 << 11
	DescDBM           = 1 << 51
	DescContiguous    = 1 << 52
	DescPXN           = 1 << 53
	DescUXN           = 1 << 54

	// Hierarchical attributes of table descriptors: they restrict every
	// mapping below.
	TablePXN     = 1 << 59
	TableUXN     = 1 << 60
	TableAPShift = 61 // APTable[1:0]
	TableNS      = 1 << 63

	// TableAPNoEL0 (APTable[0]) removes EL0 access below; TableAPRO
	// (APTable[1]) removes write access at every EL.
	TableAPNoEL0 = 1 << TableAPShift
	TableAPRO    = 2 << TableAPShift

	descOAMask = 0x0000_ffff_ffff_f000 // output address bits 47:12

	// FEAT_LPA with the 64K granule: OA[47:16] in place, OA[51:48] in
	// descriptor bits 15:12.
	descLPAOAMask  = 0x0000_ffff_ffff_0000
	descLPAHiShift = 12
)

// encodeOA places output address pa in a descriptor's address field.
func (m Mode) encodeOA(pa uint64) uint64 {
	if m.lpa() {
		return pa&descLPAOAMask | (pa>>48&0xf)<<descLPAHiShift
	}
	return pa & descOAMask
}

// oaField is the whole output address a descriptor's address field
// holds (the low bits of a block's included). With the 64K granule bits
// 15:12 are OA[51:48] in any mode, as on a CPU with FEAT_LPA (without it
// they are RES0, which this package keeps): a smaller PA size then
// makes them an address size fault.
func (m Mode) oaField(d uint64) uint64 {
	if m.Granule == Granule64K {
		return d&descLPAOAMask | (d>>descLPAHiShift&0xf)<<48
	}
	return d & descOAMask
}

// leafDesc is the block or page descriptor mapping pa with a.
func (m Mode) leafDesc(a Attrs, level int, pa uint64) uint64 {
	return a.leaf(level, 0) | m.encodeOA(pa)
}

// tableDesc is a table descriptor pointing at the table at pa.
func (m Mode) tableDesc(pa uint64) uint64 { return tableDesc(0) | m.encodeOA(pa) }

// AP is a descriptor's data access permission, AP[2:1].
type AP uint8

// Access permissions of stage 1, EL1&0 regime.
const (
	APEL1RW AP = 0b00 // EL1 read/write, EL0 none
	APRW    AP = 0b01 // EL1 and EL0 read/write
	APEL1RO AP = 0b10 // EL1 read-only, EL0 none
	APRO    AP = 0b11 // EL1 and EL0 read-only
)

func (a AP) String() string {
	switch a & 3 {
	case APEL1RW:
		return "el1-rw"
	case APRW:
		return "rw"
	case APEL1RO:
		return "el1-ro"
	}
	return "ro"
}

// Shareability is a descriptor's SH field.
type Shareability uint8

// Shareability domains (0b01 is reserved).
const (
	NonShareable   Shareability = 0b00
	OuterShareable Shareability = 0b10
	InnerShareable Shareability = 0b11
)

// Attrs are the attributes of a block or page mapping.
type Attrs struct {
	AP  AP
	UXN bool // no execution at EL0
	PXN bool // no execution at EL1
	Mem MemType
	SH  Shareability
	NG  bool // not global: tagged with the ASID
	// NoAF leaves the Access flag clear: the first access takes an Access
	// flag fault (or sets it, with hardware AF management).
	NoAF bool
	// DBM is the dirty bit modifier (FEAT_HAFDBS): with hardware dirty
	// state management (TCR_EL1.HD) a write to a read-only (AP[2]) DBM
	// page clears AP[2] (writable-dirty) instead of faulting.
	DBM bool
}

// Attribute sets of the runtime's mappings.
var (
	// KernelCode is EL1-only, read-only and executable at EL1 only.
	KernelCode = Attrs{AP: APEL1RO, UXN: true, SH: InnerShareable}
	// KernelData is EL1-only read/write data, never executed.
	KernelData = Attrs{AP: APEL1RW, UXN: true, PXN: true, SH: InnerShareable}
	// UserCode is read-only and executable at both ELs: test code runs
	// at EL1 and EL0 and moves between them inline.
	UserCode = Attrs{AP: APRO, SH: InnerShareable}
	// UserData is read/write at both ELs, never executed.
	UserData = Attrs{AP: APRW, UXN: true, PXN: true, SH: InnerShareable}
	// Device is MMIO: device-nGnRE, read/write at both ELs (EL0 code
	// makes ucalls), never executed.
	Device = Attrs{AP: APRW, UXN: true, PXN: true, Mem: MemDeviceNGnRE}
)

// leaf returns the block (level < 3) or page descriptor mapping pa with
// 48-bit output addresses (Mode.leafDesc: any mode's).
func (a Attrs) leaf(level int, pa uint64) uint64 {
	d := pa&descOAMask | DescValid |
		uint64(a.Mem&7)<<DescAttrIndxShift | uint64(a.AP&3)<<DescAPShift | uint64(a.SH&3)<<DescSHShift
	if level == 3 {
		d |= DescPage
	}
	if !a.NoAF {
		d |= DescAF
	}
	if a.NG {
		d |= DescNG
	}
	if a.DBM {
		d |= DescDBM
	}
	if a.UXN {
		d |= DescUXN
	}
	if a.PXN {
		d |= DescPXN
	}
	return d
}

// DecodeAttrs returns the attributes of a block or page descriptor.
func DecodeAttrs(d uint64) Attrs {
	return Attrs{
		AP:   AP(d >> DescAPShift & 3),
		UXN:  d&DescUXN != 0,
		PXN:  d&DescPXN != 0,
		Mem:  MemType(d >> DescAttrIndxShift & 7),
		SH:   Shareability(d >> DescSHShift & 3),
		NG:   d&DescNG != 0,
		NoAF: d&DescAF == 0,
		DBM:  d&DescDBM != 0,
	}
}

func (a Attrs) String() string {
	s := []string{a.AP.String(), a.Mem.String()}
	if a.UXN {
		s = append(s, "uxn")
	}
	if a.PXN {
		s = append(s, "pxn")
	}
	if a.NG {
		s = append(s, "ng")
	}
	if a.NoAF {
		s = append(s, "no-af")
	}
	if a.DBM {
		s = append(s, "dbm")
	}
	return strings.Join(s, ",")
}

// tableDesc returns a table descriptor pointing at the table at pa.
func tableDesc(pa uint64) uint64 { return pa&descOAMask | DescValid | DescTable }

// oa extracts the output address of a descriptor at level for mode m: the
// bits above the level's size (the low bits of a block's address are
// RES0 and ignored, as the CPU ignores them).
func (m Mode) oa(d uint64, level int) uint64 {
	if level < 3 && d&DescTable == 0 {
		return m.oaField(d) &^ (m.LevelSize(level) - 1)
	}
	return m.oaField(d) &^ (m.Granule.Size() - 1)
}

// DescString formats a descriptor for messages.
func (m Mode) DescString(d uint64, level int) string {
	switch {
	case d&DescValid == 0:
		return fmt.Sprintf("invalid(%#x)", d)
	case level == 3 && d&DescPage == 0:
		return fmt.Sprintf("reserved(%#x)", d)
	case level < 3 && d&DescTable != 0:
		return fmt.Sprintf("table %#x", m.oa(d, level))
	}
	kind := "page"
	if level < 3 {
		kind = "block"
	}
	return fmt.Sprintf("%s %#x [%v]", kind, m.oa(d, level), DecodeAttrs(d))
}
