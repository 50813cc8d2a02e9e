package a64guest

import "fmt"

// Granule is a translation granule: the page size of stage-1 translation,
// given as its log2 (12, 14 or 16).
type Granule uint8

// The three VMSAv8-64 granules.
const (
	Granule4K  Granule = 12
	Granule16K Granule = 14
	Granule64K Granule = 16
)

// Granules lists the granules, smallest first.
var Granules = []Granule{Granule4K, Granule16K, Granule64K}

// Size is the granule's page size in bytes.
func (g Granule) Size() uint64 { return 1 << g }

func (g Granule) valid() bool { return g == Granule4K || g == Granule16K || g == Granule64K }

func (g Granule) String() string {
	if !g.valid() {
		return fmt.Sprintf("Granule(%d)", uint8(g))
	}
	return fmt.Sprintf("%dK", g.Size()>>10)
}

// bitsPerLevel is how many VA bits one table level resolves: a table is
// one granule of 8-byte descriptors.
func (g Granule) bitsPerLevel() uint { return uint(g) - 3 }

// TCR_EL1.TG0 encodings (Arm ARM D19.2, TCR_EL1): not in size order.
const (
	tcrTG04K  = 0b00
	tcrTG064K = 0b01
	tcrTG016K = 0b10
	// TG1 encodes the same granules differently.
	tcrTG116K = 0b01
	tcrTG14K  = 0b10
	tcrTG164K = 0b11
)

func (g Granule) tg0() uint64 {
	return map[Granule]uint64{Granule4K: tcrTG04K, Granule16K: tcrTG016K, Granule64K: tcrTG064K}[g]
}

func (g Granule) tg1() uint64 {
	return map[Granule]uint64{Granule4K: tcrTG14K, Granule16K: tcrTG116K, Granule64K: tcrTG164K}[g]
}

// granuleFromTG0 decodes TCR_EL1.TG0; the reserved value gives ok false.
func granuleFromTG0(tg0 uint64) (Granule, bool) {
	switch tg0 {
	case tcrTG04K:
		return Granule4K, true
	case tcrTG016K:
		return Granule16K, true
	case tcrTG064K:
		return Granule64K, true
	}
	return 0, false
}

// Physical address sizes TCR_EL1.IPS encodes. 52 bits is built with the
// 64K granule only (FEAT_LPA: output address bits 51:48 in descriptor
// bits 15:12); 4K and 16K need FEAT_LPA2's other format, not built here.
var ipsBits = []int{32, 36, 40, 42, 44, 48, 52}

// lpaBits is the PA size of FEAT_LPA's descriptor format.
const lpaBits = 52

func ipsEncoding(paBits int) (uint64, bool) {
	for i, b := range ipsBits {
		if b == paBits {
			return uint64(i), true
		}
	}
	return 0, false
}

// Mode is the shape of the guest's stage-1 translation: output (physical)
// address bits, input (virtual) address bits, and granule; the kernel
// selftests' vm_guest_mode (e.g. "PA-bits:40, VA-bits:48, 4K pages").
type Mode struct {
	PABits  int
	VABits  int
	Granule Granule
}

// DefaultMode is 40-bit physical, 48-bit virtual addresses with 4 KiB
// pages: KVM's default IPA size and the common arm64 kernel shape.
var DefaultMode = Mode{PABits: 40, VABits: 48, Granule: Granule4K}

// Limits of TCR_EL1.T0SZ without FEAT_TTST and FEAT_LVA.
const (
	MinVABits = 25
	MaxVABits = 48
)

func (m Mode) String() string {
	return fmt.Sprintf("P%dV%d_%s", m.PABits, m.VABits, m.Granule)
}

// Validate reports a mode the architecture (without FEAT_LPA, FEAT_LVA,
// FEAT_TTST) cannot express.
func (m Mode) Validate() error {
	if !m.Granule.valid() {
		return fmt.Errorf("a64guest: mode %v: granule must be 4K, 16K or 64K", m)
	}
	if m.VABits < MinVABits || m.VABits > MaxVABits {
		return fmt.Errorf("a64guest: mode %v: VA bits must be in %d..%d", m, MinVABits, MaxVABits)
	}
	if _, ok := ipsEncoding(m.PABits); !ok {
		return fmt.Errorf("a64guest: mode %v: PA bits must be one of %v", m, ipsBits)
	}
	if m.lpa() && m.Granule != Granule64K {
		return fmt.Errorf("a64guest: mode %v: 52 PA bits need the 64K granule (FEAT_LPA; FEAT_LPA2's 4K/16K format is not built)", m)
	}
	return nil
}

// lpa says the mode's descriptors carry 52-bit output addresses
// (FEAT_LPA with the 64K granule).
func (m Mode) lpa() bool { return m.PABits == lpaBits }

// ModeForIPA is the mode whose stage 1 reaches every address of an
// ipaBits-bit IPA space (hv.ARM64VMType.IPABits): the smallest PA size
// TCR_EL1.IPS encodes at or above it, 48-bit VAs, the 4K granule, or
// the 64K one above 48 bits (FEAT_LPA; the guest's CPU must have it:
// ID_AA64MMFR0_EL1.PARange 52 bits).
func ModeForIPA(ipaBits int) (Mode, error) {
	for _, b := range ipsBits {
		if b >= ipaBits {
			m := Mode{PABits: b, VABits: MaxVABits, Granule: Granule4K}
			if m.lpa() {
				m.Granule = Granule64K
			}
			return m, nil
		}
	}
	return Mode{}, fmt.Errorf("a64guest: no stage-1 PA size reaches a %d-bit IPA space (at most %d)", ipaBits, lpaBits)
}

// StartLevel is the level of the first lookup (0..3): as many levels as it
// takes to resolve VABits above the page offset.
func (m Mode) StartLevel() int {
	g := uint(m.Granule)
	return 3 - int((uint(m.VABits)-g-1)/m.Granule.bitsPerLevel())
}

// shift is the lowest VA bit a level-n descriptor resolves.
func (m Mode) shift(level int) uint {
	return uint(m.Granule) + uint(3-level)*m.Granule.bitsPerLevel()
}

// LevelSize is the size of the region one descriptor at level maps: the
// page at level 3, the block size at the block levels.
func (m Mode) LevelSize(level int) uint64 { return 1 << m.shift(level) }

// Entries is how many descriptors the table at level has; the start
// level's table may be smaller than a granule.
func (m Mode) Entries(level int) uint64 {
	if level == m.StartLevel() {
		return 1 << (uint(m.VABits) - m.shift(level))
	}
	return 1 << m.Granule.bitsPerLevel()
}

func (m Mode) index(va uint64, level int) uint64 {
	return va >> m.shift(level) & (m.Entries(level) - 1)
}

// BlockLevels are the levels where a block descriptor is allowed with a
// 48-bit output address: 1 GiB and 2 MiB with 4K, 32 MiB with 16K,
// 512 MiB with 64K.
func (m Mode) BlockLevels() []int {
	if m.Granule == Granule4K {
		return []int{1, 2}
	}
	return []int{2}
}

func (m Mode) blockAllowed(level int) bool {
	for _, l := range m.BlockLevels() {
		if l == level && level >= m.StartLevel() {
			return true
		}
	}
	return false
}

// VASize is the size of the TTBR0 region, [0, VASize).
func (m Mode) VASize() uint64 { return 1 << uint(m.VABits) }

// PALimit is one past the highest physical address.
func (m Mode) PALimit() uint64 { return 1 << uint(m.PABits) }

// TCR_EL1 fields (Arm ARM D19.2).
const (
	TCRT0SZShift  = 0
	TCREPD0       = 1 << 7
	TCRIRGN0Shift = 8
	TCRORGN0Shift = 10
	TCRSH0Shift   = 12
	TCRTG0Shift   = 14
	TCRT1SZShift  = 16
	TCRA1         = 1 << 22
	TCREPD1       = 1 << 23
	TCRIRGN1Shift = 24
	TCRORGN1Shift = 26
	TCRSH1Shift   = 28
	TCRTG1Shift   = 30
	TCRIPSShift   = 32
	TCRAS         = 1 << 36
	TCRTBI0       = 1 << 37
	TCRHA         = 1 << 39
	TCRHD         = 1 << 40

	// Cacheability of table walks: normal memory, write-back
	// read-allocate write-allocate cacheable (IRGN/ORGN = 0b01).
	tcrRGNWBWA = 0b01
)

// TCR is the TCR_EL1 value for the mode: TTBR0 walks with T0SZ = 64 -
// VABits, write-back cacheable inner-shareable walks, TTBR1 walks disabled
// (EPD1: upper addresses fault), and the IPS field. ha sets hardware
// Access flag management (FEAT_HAFDBS; the guest checks the feature first).
func (m Mode) TCR(ha bool) uint64 {
	ips, _ := ipsEncoding(m.PABits)
	tsz := uint64(64 - m.VABits)
	v := tsz<<TCRT0SZShift |
		tcrRGNWBWA<<TCRIRGN0Shift | tcrRGNWBWA<<TCRORGN0Shift | uint64(InnerShareable)<<TCRSH0Shift |
		m.Granule.tg0()<<TCRTG0Shift |
		tsz<<TCRT1SZShift | TCREPD1 | m.Granule.tg1()<<TCRTG1Shift |
		ips<<TCRIPSShift
	if ha {
		v |= TCRHA
	}
	return v
}

// ModeFromTCR decodes the TTBR0 half of a TCR_EL1 value, as a CPU would
// read it: the walker uses it, so a TCR the runtime programs is checked by
// translating with the value itself.
func ModeFromTCR(tcr uint64) (Mode, error) {
	g, ok := granuleFromTG0(tcr >> TCRTG0Shift & 3)
	if !ok {
		return Mode{}, fmt.Errorf("a64guest: TCR_EL1 %#x: reserved TG0", tcr)
	}
	ips := tcr >> TCRIPSShift & 7
	if ips >= uint64(len(ipsBits)) {
		return Mode{}, fmt.Errorf("a64guest: TCR_EL1 %#x: IPS %d is not supported", tcr, ips)
	}
	m := Mode{PABits: ipsBits[ips], VABits: 64 - int(tcr>>TCRT0SZShift&63), Granule: g}
	if err := m.Validate(); err != nil {
		return Mode{}, fmt.Errorf("TCR_EL1 %#x: %w", tcr, err)
	}
	return m, nil
}

// MemType is a memory type: an index into MAIR_EL1 (a descriptor's
// AttrIndx). The runtime's MAIR defines these four.
type MemType uint8

// Memory types of the runtime's MAIR_EL1.
const (
	MemNormal       MemType = 0 // normal, inner/outer write-back, read/write-allocate
	MemDeviceNGnRE  MemType = 1 // device, no gathering, no reordering, early write ack (MMIO)
	MemDeviceNGnRnE MemType = 2 // device, strongly ordered
	MemNormalNC     MemType = 3 // normal, non-cacheable
)

// MAIR attribute bytes (Arm ARM D19.2, MAIR_EL1.Attr<n>).
const (
	mairNormalWB    = 0xff
	mairDeviceNGnRE = 0x04
	mairDevNGnRnE   = 0x00
	mairNormalNC    = 0x44
)

// MAIR is the runtime's MAIR_EL1 value: attribute n is MemType n.
func MAIR() uint64 {
	attrs := [...]uint64{MemNormal: mairNormalWB, MemDeviceNGnRE: mairDeviceNGnRE,
		MemDeviceNGnRnE: mairDevNGnRnE, MemNormalNC: mairNormalNC}
	var v uint64
	for i, a := range attrs {
		v |= a << (8 * i)
	}
	return v
}

func (t MemType) String() string {
	switch t {
	case MemNormal:
		return "normal"
	case MemDeviceNGnRE:
		return "device-nGnRE"
	case MemDeviceNGnRnE:
		return "device-nGnRnE"
	case MemNormalNC:
		return "normal-nc"
	}
	return fmt.Sprintf("attr%d", uint8(t))
}

// SCTLR_EL1 bits the runtime sets (Arm ARM D19.2).
const (
	SCTLRM    = 1 << 0  // stage-1 MMU on
	SCTLRA    = 1 << 1  // alignment checks
	SCTLRC    = 1 << 2  // data cacheable
	SCTLRSA   = 1 << 3  // SP alignment check at EL1
	SCTLRSA0  = 1 << 4  // SP alignment check at EL0
	SCTLRI    = 1 << 12 // instruction cacheable
	SCTLRDZE  = 1 << 14 // EL0 may DC ZVA
	SCTLRUCT  = 1 << 15 // EL0 may read CTR_EL0
	SCTLRnTWI = 1 << 16 // EL0 WFI does not trap
	SCTLRnTWE = 1 << 18 // EL0 WFE does not trap
	SCTLRWXN  = 1 << 19 // writable implies execute-never
	SCTLRUCI  = 1 << 26 // EL0 cache maintenance allowed

	// sctlrRES1 are the bits that read as one in Armv8.0 (EOS, TSCXT,
	// EIS, SPAN, nTLSMD, LSMAOE): exception entry and return are context
	// synchronizing, PAN is left alone, no trapping of LD/ST multiple.
	sctlrRES1 = 1<<11 | 1<<20 | 1<<22 | 1<<23 | 1<<28 | 1<<29
)

// SCTLR is the SCTLR_EL1 value the runtime enables: MMU and caches on,
// stack alignment checked at both ELs, EL0 allowed what EL1 test code is
// (WFI/WFE, DC ZVA, CTR_EL0, cache maintenance), no WXN.
func SCTLR() uint64 {
	return sctlrRES1 | SCTLRM | SCTLRC | SCTLRI | SCTLRSA | SCTLRSA0 |
		SCTLRDZE | SCTLRUCT | SCTLRnTWI | SCTLRnTWE | SCTLRUCI
}

// CPACR_EL1.FPEN: FP/SIMD does not trap at EL0 or EL1.
const cpacrFPENNoTrap = 3 << 20

// ID_AA64MMFR0_EL1 fields (Arm ARM D19.2): which granules the CPU's
// stage 1 supports and its physical address size. TGran4 and TGran64 are
// signed (0xf: not supported), TGran16 unsigned (0: not supported).
const (
	mmfr0PARangeShift = 0
	mmfr0TGran16Shift = 20
	mmfr0TGran64Shift = 24
	mmfr0TGran4Shift  = 28
)

// SupportsGranule reports whether a CPU whose ID_AA64MMFR0_EL1 reads
// mmfr0 offers granule g at stage 1.
func SupportsGranule(mmfr0 uint64, g Granule) bool {
	switch g {
	case Granule4K:
		return mmfr0>>mmfr0TGran4Shift&0xf != 0xf
	case Granule16K:
		return mmfr0>>mmfr0TGran16Shift&0xf != 0
	case Granule64K:
		return mmfr0>>mmfr0TGran64Shift&0xf != 0xf
	}
	return false
}

// PABitsFromMMFR0 is the CPU's physical address size (ID_AA64MMFR0_EL1.PARange),
// capped at 48 bits: what every granule's descriptors reach (52 bits
// needs the 64K granule, see MMFR0PABits).
func PABitsFromMMFR0(mmfr0 uint64) int { return min(MMFR0PABits(mmfr0), 48) }

// MMFR0PABits is the CPU's physical address size as
// ID_AA64MMFR0_EL1.PARange says it, 52 bits included (encodings above
// 52 bits' are read as 52).
func MMFR0PABits(mmfr0 uint64) int {
	r := mmfr0 >> mmfr0PARangeShift & 0xf
	if r >= uint64(len(ipsBits)) {
		return ipsBits[len(ipsBits)-1]
	}
	return ipsBits[r]
}
