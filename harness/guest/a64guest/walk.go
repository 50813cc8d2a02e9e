package a64guest

import (
	"fmt"
)

// Access is one memory access to translate: at EL0 or EL1, a read, a
// write or an instruction fetch.
type Access struct {
	EL    int // 0 or 1
	Write bool
	Exec  bool
}

func (a Access) String() string {
	kind := "read"
	switch {
	case a.Exec:
		kind = "fetch"
	case a.Write:
		kind = "write"
	}
	return fmt.Sprintf("el%d %s", a.EL, kind)
}

// Perm is what a mapping allows at each EL, after hierarchical table
// attributes and the implicit rules.
type Perm struct {
	EL1R, EL1W, EL1X bool
	EL0R, EL0W, EL0X bool
}

func (p Perm) allows(a Access) bool {
	switch {
	case a.EL == 0 && a.Exec:
		return p.EL0X
	case a.EL == 0 && a.Write:
		return p.EL0W
	case a.EL == 0:
		return p.EL0R
	case a.Exec:
		return p.EL1X
	case a.Write:
		return p.EL1W
	}
	return p.EL1R
}

func (p Perm) String() string {
	f := func(r, w, x bool) string {
		b := []byte("---")
		if r {
			b[0] = 'r'
		}
		if w {
			b[1] = 'w'
		}
		if x {
			b[2] = 'x'
		}
		return string(b)
	}
	return "el1:" + f(p.EL1R, p.EL1W, p.EL1X) + " el0:" + f(p.EL0R, p.EL0W, p.EL0X)
}

// FaultKind is the kind of a stage-1 fault, as ESR_ELx's fault status
// code names it.
type FaultKind int

// Stage-1 fault kinds.
const (
	FaultAddressSize  FaultKind = iota // an address beyond the PA size (or the VA range's TTBR)
	FaultTranslation                   // an invalid descriptor, or a VA outside TTBR0's range
	FaultAccessFlag                    // AF clear without hardware AF management
	FaultPermission                    // AP, UXN/PXN or a table restriction forbids the access
	FaultWalkExternal                  // a descriptor read from memory that is not there
)

var faultNames = [...]string{"address size", "translation", "access flag", "permission", "external abort on walk"}

func (k FaultKind) String() string {
	if k >= 0 && int(k) < len(faultNames) {
		return faultNames[k]
	}
	return fmt.Sprintf("fault(%d)", int(k))
}

// Fault is a translation fault the walker predicts; it is an error.
type Fault struct {
	Kind   FaultKind
	Level  int
	VA     uint64
	Access Access
	Err    error // the memory error of a FaultWalkExternal
}

func (f *Fault) Error() string {
	s := fmt.Sprintf("a64guest: %v of %#x: %s fault, level %d", f.Access, f.VA, f.Kind, f.Level)
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

func (f *Fault) Unwrap() error { return f.Err }

// FSC is the fault status code ESR_EL1.ISS.{D,I}FSC carries for the fault
// (Arm ARM D19.2, ESR_EL1): 0b0000LL address size, 0b0001LL translation,
// 0b0010LL access flag, 0b0011LL permission, 0b0101LL synchronous external
// abort on a table walk, LL the level.
func (f *Fault) FSC() uint32 {
	base := map[FaultKind]uint32{FaultAddressSize: 0b000000, FaultTranslation: 0b000100,
		FaultAccessFlag: 0b001000, FaultPermission: 0b001100, FaultWalkExternal: 0b010100}[f.Kind]
	return base | uint32(f.Level&3)
}

// Translation is the result of a successful walk.
type Translation struct {
	VA, PA uint64
	Level  int    // level of the leaf: 3 for a page, 1 or 2 for a block
	Size   uint64 // bytes the leaf maps
	Desc   uint64 // the leaf descriptor
	Attrs  Attrs
	Perm   Perm
	Steps  []Step
}

// Walker translates addresses through guest memory as the CPU does for the
// EL1&0 stage-1 regime with TTBR0: start level, descriptor validity,
// block levels, address-size checks against the PA size, hierarchical
// table permissions, the Access flag, and the permission rules (EL0
// writable memory is never executable at EL1; WXN). PAN, TTBR1 walks
// (EPD1 is assumed set), FEAT_LPA2 and FEAT_HPDS are not modelled;
// FEAT_LPA's 52-bit output addresses (64K granule) are.
type Walker struct {
	Mode  Mode
	TTBR0 uint64 // the table base; the ASID bits (63:48) are ignored
	Mem   Reader
	// HA is TCR_EL1.HA: the CPU sets AF instead of faulting.
	HA bool
	// HD is TCR_EL1.HD (effective with HA only): a write that only a
	// leaf's AP[2] forbids, to a descriptor with DBM set, clears AP[2]
	// instead of faulting (table restrictions still apply).
	HD bool
	// WXN is SCTLR_EL1.WXN.
	WXN bool
}

// NewWalker builds the walker the register values describe.
func NewWalker(tcr, ttbr0, sctlr uint64, mem Reader) (*Walker, error) {
	m, err := ModeFromTCR(tcr)
	if err != nil {
		return nil, err
	}
	return &Walker{Mode: m, TTBR0: ttbr0, Mem: mem, HA: tcr&TCRHA != 0,
		HD: tcr&TCRHA != 0 && tcr&TCRHD != 0, WXN: sctlr&SCTLRWXN != 0}, nil
}

// Translate walks va for the access a and returns the translation, or a
// *Fault saying which fault the CPU takes and at which level. A fault is
// decided in the CPU's order: address size and translation faults during
// the walk, then the Access flag, then permissions.
func (w *Walker) Translate(va uint64, a Access) (Translation, error) {
	m := w.Mode
	fault := func(k FaultKind, level int, err error) (Translation, error) {
		return Translation{}, &Fault{Kind: k, Level: level, VA: va, Access: a, Err: err}
	}
	if va >= m.VASize() {
		// Above TTBR0's range: TTBR1 (walks disabled) or neither range.
		return fault(FaultTranslation, 0, nil)
	}
	// BADDR: bit 0 (CnP) and the ASID (bits 63:48) are not address bits;
	// with FEAT_LPA's 52-bit PAs BADDR[51:48] are bits 5:2.
	base := w.TTBR0 & (1<<48 - 1) &^ 1
	if m.lpa() {
		base = w.TTBR0&(1<<48-1)&^(1<<6-1) | (w.TTBR0>>2&0xf)<<48
	}
	if base >= m.PALimit() {
		return fault(FaultAddressSize, 0, nil)
	}
	// The start-level table is aligned to its size (at least 64 bytes):
	// lower BADDR bits are RES0 and the CPU ignores them.
	base &^= max(8*m.Entries(m.StartLevel()), 64) - 1

	var (
		steps                   []Step
		noWrite, noEL0, uxn, px bool
	)
	table := base
	for level := m.StartLevel(); level <= 3; level++ {
		egpa := table + 8*m.index(va, level)
		d, err := read64(w.Mem, egpa)
		if err != nil {
			return fault(FaultWalkExternal, level, err)
		}
		steps = append(steps, Step{Level: level, EntryGPA: egpa, Desc: d})
		if d&DescValid == 0 {
			return fault(FaultTranslation, level, nil)
		}
		if level < 3 && d&DescTable != 0 {
			next := m.oa(d, level)
			if m.oaField(d) >= m.PALimit() {
				return fault(FaultAddressSize, level, nil)
			}
			noWrite = noWrite || d&TableAPRO != 0
			noEL0 = noEL0 || d&TableAPNoEL0 != 0
			uxn = uxn || d&TableUXN != 0
			px = px || d&TablePXN != 0
			table = next
			continue
		}
		// A block, a page, or a reserved encoding.
		if level == 3 && d&DescPage == 0 || level < 3 && !m.blockAllowed(level) {
			return fault(FaultTranslation, level, nil)
		}
		pa := m.oa(d, level)
		if m.oaField(d) >= m.PALimit() {
			return fault(FaultAddressSize, level, nil)
		}
		if d&DescAF == 0 && !w.HA {
			return fault(FaultAccessFlag, level, nil)
		}
		attrs := DecodeAttrs(d)
		pa1 := attrs
		if w.HA && w.HD && attrs.DBM {
			// Writable-clean: a write makes the CPU clear AP[2].
			pa1.AP &^= 0b10
		}
		p := w.perm(pa1, noWrite, noEL0, uxn, px)
		if !p.allows(a) {
			return fault(FaultPermission, level, nil)
		}
		size := m.LevelSize(level)
		return Translation{VA: va, PA: pa | va&(size-1), Level: level, Size: size, Desc: d,
			Attrs: attrs, Perm: p, Steps: steps}, nil
	}
	panic("unreachable: level 3 always ends the walk")
}

// perm applies the stage-1 permission rules to a leaf's attributes and the
// restrictions the tables above it carried.
func (w *Walker) perm(a Attrs, noWrite, noEL0, tableUXN, tablePXN bool) Perm {
	ap := a.AP
	if noWrite {
		ap |= 0b10 // AP[2]: read-only
	}
	if noEL0 {
		ap &^= 0b01 // AP[1]: no EL0 access
	}
	p := Perm{
		EL1R: true,
		EL1W: ap&0b10 == 0,
		EL0R: ap&0b01 != 0,
		EL0W: ap == APRW,
	}
	// WXN makes whatever is writable (at either EL; EL0-writable is
	// EL1-writable too) execute-never at both.
	wxn := w.WXN && p.EL1W
	// EL0 may execute what it cannot read (AP[1] clear, UXN clear): the
	// execute-only memory of Armv8.0.
	p.EL0X = !a.UXN && !tableUXN && !wxn
	// Memory EL0 can write is never executable at EL1.
	p.EL1X = !a.PXN && !tablePXN && !p.EL0W && !wxn
	return p
}
