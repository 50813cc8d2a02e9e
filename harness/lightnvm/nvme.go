package lightnvm

import (
	"encoding/binary"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The controller's register block (one MMIO region, RegionSize bytes), a
// subset of NVMe's BAR0 with the meanings NVMe gives them:
//
//	0x0000 CAP   (8, RO)  MQES = MaxQueueEntries-1, CQR = 1, TO, CSS = NVM
//	0x0008 VS    (4, RO)  1.3
//	0x000C INTMS, 0x0010 INTMC (4) stored, not used (MSI-X only)
//	0x0014 CC    (4)      EN (bit 0): 0→1 creates the admin queues from
//	                      AQA/ASQ/ACQ and sets CSTS.RDY; 1→0 is a
//	                      controller reset (every queue deleted, commands
//	                      in flight never complete)
//	0x001C CSTS  (4, RO)  RDY (bit 0)
//	0x0024 AQA   (4)      ASQS 11:0, ACQS 27:16 (0-based)
//	0x0028 ASQ   (8), 0x0030 ACQ (8): admin queue bases (4 KiB aligned)
//	0x1000 + 8·q         SQ q tail doorbell (stride 4 bytes, DSTRD 0)
//	0x1004 + 8·q         CQ q head doorbell
//	0x2000 + 16·v        MSI-X table entry v: address lo, hi, data, control
//	                      (bit 0 masks; a masked vector's interrupt is
//	                      held pending and sent on unmask)
//
// Registers take 4- or 8-byte accesses (8 only on CAP, ASQ, ACQ); other
// sizes read zeroes and their writes are dropped, counted in Stats.
const (
	RegCAP        = 0x00
	RegVS         = 0x08
	RegINTMS      = 0x0c
	RegINTMC      = 0x10
	RegCC         = 0x14
	RegCSTS       = 0x1c
	RegAQA        = 0x24
	RegASQ        = 0x28
	RegACQ        = 0x30
	RegDoorbell   = 0x1000
	RegMSIXTable  = 0x2000
	MSIXEntrySize = 16
	RegionSize    = 0x3000

	// MaxQueueEntries is the largest queue (CAP.MQES + 1).
	MaxQueueEntries = 4096
	// MaxQueueID is the highest I/O queue id; 0 is the admin queue.
	MaxQueueID = 64
	// MSIXVectors is the MSI-X table's size.
	MSIXVectors = 32

	CCEnable  = 1 << 0
	CSTSReady = 1 << 0
	// CC.SHN (bits 15:14) and CSTS.SHST (bits 3:2).
	ccSHNMask    = 3 << 14
	cstsSHSTMask = 3 << 2
	cstsSHSTDone = 2 << 2
	capCQR       = 1 << 16
	capTOShift   = 24
	capCSSNVM    = 1 << 37
	nvmeVS13     = 0x00010300

	SQEntrySize = 64
	CQEntrySize = 16
	pageSize    = 4096
)

// DoorbellSQ and DoorbellCQ are the offsets of queue q's doorbells.
func DoorbellSQ(q int) uint64 { return RegDoorbell + 8*uint64(q) }

// DoorbellCQ is the offset of completion queue q's head doorbell.
func DoorbellCQ(q int) uint64 { return RegDoorbell + 8*uint64(q) + 4 }

// Admin opcodes.
const (
	AdminDeleteSQ     = 0x00
	AdminCreateSQ     = 0x01
	AdminGetLogPage   = 0x02
	AdminDeleteCQ     = 0x04
	AdminCreateCQ     = 0x05
	AdminIdentify     = 0x06
	AdminGeometry     = 0xe2 // OCSSD geometry (identity)
	AdminSetBadBlocks = 0xf1
	AdminGetBadBlocks = 0xf2

	LogReportChunk = 0xca

	CNSNamespace  = 0
	CNSController = 1
)

// I/O opcodes (OCSSD 2.0 vector commands; 1.2's erase, write and read
// share the numbers).
const (
	IOVectorReset = 0x90
	IOVectorWrite = 0x91
	IOVectorRead  = 0x92
)

// Command is a decoded 64-byte submission queue entry.
type Command struct {
	Opcode uint8
	Flags  uint8
	CID    uint16
	NSID   uint32
	MPTR   uint64
	PRP1   uint64
	PRP2   uint64
	CDW10  uint32
	CDW11  uint32
	CDW12  uint32
	CDW13  uint32
	CDW14  uint32
	CDW15  uint32
}

// DecodeCommand decodes an SQ entry; any 64 bytes decode.
func DecodeCommand(b []byte) (Command, error) {
	if len(b) != SQEntrySize {
		return Command{}, fmt.Errorf("submission entry: %d bytes, want %d", len(b), SQEntrySize)
	}
	le := binary.LittleEndian
	return Command{Opcode: b[0], Flags: b[1], CID: le.Uint16(b[2:]), NSID: le.Uint32(b[4:]), MPTR: le.Uint64(b[16:]),
		PRP1: le.Uint64(b[24:]), PRP2: le.Uint64(b[32:]), CDW10: le.Uint32(b[40:]), CDW11: le.Uint32(b[44:]),
		CDW12: le.Uint32(b[48:]), CDW13: le.Uint32(b[52:]), CDW14: le.Uint32(b[56:]), CDW15: le.Uint32(b[60:])}, nil
}

// Encode is DecodeCommand's inverse (for drivers and tests).
func (c Command) Encode() [SQEntrySize]byte {
	var b [SQEntrySize]byte
	le := binary.LittleEndian
	b[0], b[1] = c.Opcode, c.Flags
	le.PutUint16(b[2:], c.CID)
	le.PutUint32(b[4:], c.NSID)
	le.PutUint64(b[16:], c.MPTR)
	le.PutUint64(b[24:], c.PRP1)
	le.PutUint64(b[32:], c.PRP2)
	for i, v := range []uint32{c.CDW10, c.CDW11, c.CDW12, c.CDW13, c.CDW14, c.CDW15} {
		le.PutUint32(b[40+4*i:], v)
	}
	return b
}

// SPBA is a vector command's address (dwords 10-11): the LBA itself when
// one LBA is given, else the guest address of the LBA list.
func (c Command) SPBA() uint64 { return uint64(c.CDW10) | uint64(c.CDW11)<<32 }

// NLB is a vector command's LBA count minus one (dword 12, bits 15:0).
func (c Command) NLB() int { return int(c.CDW12 & 0xffff) }

// Completion is a decoded 16-byte completion queue entry.
type Completion struct {
	Result uint64 // dwords 0-1: for vector commands, the failed-LBA bitmap
	SQHead uint16
	SQID   uint16
	CID    uint16
	Phase  bool
	Status Status
}

// DecodeCompletion decodes a CQ entry.
func DecodeCompletion(b []byte) Completion {
	le := binary.LittleEndian
	dw3 := le.Uint32(b[12:])
	return Completion{Result: le.Uint64(b[0:]), SQHead: le.Uint16(b[8:]), SQID: le.Uint16(b[10:]),
		CID: uint16(dw3), Phase: dw3&(1<<16) != 0, Status: Status(dw3 >> 17)}
}

// dw3 packs a completion's last dword: CID, phase, status.
func (c Completion) dw3() uint32 {
	v := uint32(c.CID) | uint32(c.Status)<<17
	if c.Phase {
		v |= 1 << 16
	}
	return v
}

// prpList resolves a transfer of n bytes described by PRP1/PRP2 into
// guest-physical segments, as NVMe defines them: PRP1 may start inside a
// page; the rest is PRP2 when it fits in one more page, else PRP2 points
// to a list of page addresses whose last entry chains to the next list
// when more follow. Every entry after PRP1 must be page aligned.
func prpList(mem hv.GuestMemory, prp1, prp2 uint64, n uint64) ([]segment, error) {
	if n == 0 {
		return nil, nil
	}
	first := min(n, pageSize-prp1%pageSize)
	segs := []segment{{prp1, first}}
	rest := n - first
	if rest == 0 {
		return segs, nil
	}
	if rest <= pageSize {
		if prp2%pageSize != 0 {
			return nil, fmt.Errorf("PRP2 %#x not page aligned", prp2)
		}
		return append(segs, segment{prp2, rest}), nil
	}
	if prp2%8 != 0 {
		return nil, fmt.Errorf("PRP list pointer %#x not 8-byte aligned", prp2)
	}
	list := prp2
	const perPage = pageSize / 8
	// A guest can chain a list to itself; no honest list needs more steps
	// than one per data page plus one per list page.
	for steps := 2*(n/pageSize) + 2; rest > 0; steps-- {
		if steps == 0 {
			return nil, fmt.Errorf("PRP list at %#x: chain does not end", prp2)
		}
		// Entries left in this list page; the last one chains when more
		// pages follow than it can hold.
		slots := perPage - list%pageSize/8
		e, err := mem.Load64(list)
		if err != nil {
			return nil, fmt.Errorf("PRP list entry at %#x: %w", list, err)
		}
		if slots == 1 && rest > pageSize {
			if e%8 != 0 {
				return nil, fmt.Errorf("PRP list chain %#x not 8-byte aligned", e)
			}
			list = e
			continue
		}
		if e%pageSize != 0 {
			return nil, fmt.Errorf("PRP entry %#x at %#x not page aligned", e, list)
		}
		k := min(rest, pageSize)
		segs = append(segs, segment{e, k})
		rest -= k
		list += 8
	}
	return segs, nil
}

type segment struct{ gpa, n uint64 }

// copyOut writes b to the guest through segs.
func copyOut(mem hv.GuestMemory, segs []segment, b []byte) error {
	at := uint64(0)
	for _, s := range segs {
		if err := mem.WriteGPA(s.gpa, b[at:at+s.n]); err != nil {
			return err
		}
		at += s.n
	}
	return nil
}

// copyIn reads the guest's data through segs into b.
func copyIn(mem hv.GuestMemory, segs []segment, b []byte) error {
	at := uint64(0)
	for _, s := range segs {
		if err := mem.ReadGPA(s.gpa, b[at:at+s.n]); err != nil {
			return err
		}
		at += s.n
	}
	return nil
}
