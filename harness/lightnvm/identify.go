package lightnvm

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// IdentifySize is the size of every identify structure (NVME_IDENTIFY_DATA_SIZE).
const IdentifySize = 4096

// PCI identity the Linux host driver matched an OCSSD by (CNEX vendor,
// QEMU's device id); the controller identify carries the vendor id.
const (
	PCIVendorCNEX = 0x1d1d
	PCIDeviceQEMU = 0x1f1f
)

// Offsets in struct nvme_nvm_id20 (OCSSD 2.0 Geometry, admin 0xE2).
const (
	id20Major    = 0
	id20Minor    = 1
	id20LBAF     = 8 // grp_len, pu_len, chk_len, lba_len
	id20MCCAP    = 16
	id20WIT      = 32
	id20NumGrp   = 64
	id20NumPU    = 66
	id20NumChk   = 68
	id20CLBA     = 72
	id20WSMin    = 128
	id20WSOpt    = 132
	id20MWCunits = 136
	id20MaxOC    = 140
	id20MaxOCPU  = 144
	id20TRDT     = 192
	id20TRDM     = 196
	id20TWRT     = 200
	id20TWRM     = 204
	id20TCRST    = 208
	id20TCRSM    = 212
	id20VS       = 3072
)

// Offsets in struct nvme_nvm_id12: the header, the 16-byte address
// format at 12, and the one group (struct nvme_nvm_id12_grp, 960 bytes) at 256.
const (
	id12VerID = 0
	id12VMNT  = 1
	id12CGrps = 2
	id12Cap   = 4
	id12DOM   = 8
	id12PPAF  = 12
	id12Grp   = 256
	// Inside the group.
	grpMType   = 0
	grpFMType  = 1
	grpNumCh   = 4
	grpNumLun  = 5
	grpNumPln  = 6
	grpNumChk  = 8
	grpNumPg   = 10
	grpFPgSz   = 12
	grpCSecs   = 14
	grpSOS     = 16
	grpTRDT    = 20
	grpTRDM    = 24
	grpTPRT    = 28
	grpTPRM    = 32
	grpTBET    = 36
	grpTBEM    = 40
	grpMPOS    = 44
	grpMCCAP   = 48
	grpCPAR    = 52
	id12GrpLen = 960
)

// Identity encodes the geometry command's 4096-byte answer in the
// device's version: struct nvme_nvm_id20 or nvme_nvm_id12.
func (g Geometry) Identity() []byte {
	b := make([]byte, IdentifySize)
	le := binary.LittleEndian
	if g.Version == V12 {
		b[id12VerID], b[id12VMNT], b[id12CGrps] = 1, g.VendorOpcode, 1
		le.PutUint32(b[id12Cap:], g.Capabilities)
		le.PutUint32(b[id12DOM:], g.DeviceMode)
		f := g.PPAFormat()
		copy(b[id12PPAF:], []byte{f.ChOff, f.ChLen, f.LunOff, f.LunLen, f.PlnOff, f.PlnLen, f.BlkOff, f.BlkLen, f.PgOff, f.PgLen, f.SecOff, f.SecLen})
		gr := b[id12Grp : id12Grp+id12GrpLen]
		gr[grpMType], gr[grpFMType] = g.MediaType, g.FlashMediaType
		gr[grpNumCh], gr[grpNumLun], gr[grpNumPln] = uint8(g.Channels), uint8(g.LUNs), uint8(g.Planes)
		le.PutUint16(gr[grpNumChk:], uint16(g.Blocks))
		le.PutUint16(gr[grpNumPg:], uint16(g.Pages))
		le.PutUint16(gr[grpFPgSz:], uint16(g.PageSize))
		le.PutUint16(gr[grpCSecs:], uint16(g.SectorSize))
		le.PutUint16(gr[grpSOS:], uint16(g.OOBSize))
		for off, v := range map[int]uint32{grpTRDT: g.ReadTyp, grpTRDM: g.ReadMax, grpTPRT: g.ProgTyp, grpTPRM: g.ProgMax,
			grpTBET: g.EraseTyp, grpTBEM: g.EraseMax, grpMPOS: g.MPOS, grpMCCAP: g.MCCAP} {
			le.PutUint32(gr[off:], v)
		}
		return b
	}
	b[id20Major], b[id20Minor] = 2, 0
	f := g.LBAFormat()
	copy(b[id20LBAF:], []byte{f.GroupLen, f.PULen, f.ChunkLen, f.SectorLen})
	le.PutUint32(b[id20MCCAP:], g.MCCAP)
	le.PutUint16(b[id20NumGrp:], uint16(g.Groups))
	le.PutUint16(b[id20NumPU:], uint16(g.PUnits))
	for off, v := range map[int]uint32{id20NumChk: uint32(g.Chunks), id20CLBA: uint32(g.CLBA), id20WSMin: uint32(g.WSMin),
		id20WSOpt: uint32(g.WSOpt), id20MWCunits: uint32(g.MWCunit), id20MaxOC: uint32(g.MaxOC), id20MaxOCPU: uint32(g.MaxOCPU),
		id20TRDT: g.ReadTyp, id20TRDM: g.ReadMax, id20TWRT: g.WriteTyp, id20TWRM: g.WriteMax, id20TCRST: g.ResetTyp, id20TCRSM: g.ResetMax} {
		le.PutUint32(b[off:], v)
	}
	return b
}

// ParseIdentity decodes a geometry answer as the Linux host did
// (nvme_nvm_setup_12/20), with its rejections: a 1.2 identity needs one
// group of media type 0, a 2.0 identity must be exactly 2.0.
func ParseIdentity(b []byte) (Geometry, error) {
	if len(b) < IdentifySize {
		return Geometry{}, fmt.Errorf("identity: %d bytes, want %d", len(b), IdentifySize)
	}
	le := binary.LittleEndian
	switch b[0] {
	case 1:
		if b[id12CGrps] != 1 {
			return Geometry{}, fmt.Errorf("identity 1.2: %d groups, the host supports 1", b[id12CGrps])
		}
		gr := b[id12Grp:]
		if gr[grpMType] != 0 {
			return Geometry{}, fmt.Errorf("identity 1.2: memory type %d not supported", gr[grpMType])
		}
		g := Geometry{Version: V12, Channels: int(gr[grpNumCh]), LUNs: int(gr[grpNumLun]), Planes: int(gr[grpNumPln]),
			Blocks: int(le.Uint16(gr[grpNumChk:])), Pages: int(le.Uint16(gr[grpNumPg:])), PageSize: int(le.Uint16(gr[grpFPgSz:])),
			SectorSize: int(le.Uint16(gr[grpCSecs:])), OOBSize: int(le.Uint16(gr[grpSOS:])),
			ReadTyp: le.Uint32(gr[grpTRDT:]), ReadMax: le.Uint32(gr[grpTRDM:]), ProgTyp: le.Uint32(gr[grpTPRT:]), ProgMax: le.Uint32(gr[grpTPRM:]),
			EraseTyp: le.Uint32(gr[grpTBET:]), EraseMax: le.Uint32(gr[grpTBEM:]), MPOS: le.Uint32(gr[grpMPOS:]), MCCAP: le.Uint32(gr[grpMCCAP:]),
			MediaType: gr[grpMType], FlashMediaType: gr[grpFMType], VendorOpcode: b[id12VMNT],
			Capabilities: le.Uint32(b[id12Cap:]), DeviceMode: le.Uint32(b[id12DOM:])}
		return g.Normalize()
	case 2:
		if b[id20Minor] != 0 {
			return Geometry{}, fmt.Errorf("identity: OCSSD version not supported (v%d.%d)", b[0], b[1])
		}
		g := Geometry{Version: V20, Groups: int(le.Uint16(b[id20NumGrp:])), PUnits: int(le.Uint16(b[id20NumPU:])),
			Chunks: int(le.Uint32(b[id20NumChk:])), CLBA: int(le.Uint32(b[id20CLBA:])),
			WSMin: int(le.Uint32(b[id20WSMin:])), WSOpt: int(le.Uint32(b[id20WSOpt:])), MWCunit: int(le.Uint32(b[id20MWCunits:])),
			MaxOC: int(le.Uint32(b[id20MaxOC:])), MaxOCPU: int(le.Uint32(b[id20MaxOCPU:])), MCCAP: le.Uint32(b[id20MCCAP:]),
			ReadTyp: le.Uint32(b[id20TRDT:]), ReadMax: le.Uint32(b[id20TRDM:]), WriteTyp: le.Uint32(b[id20TWRT:]),
			WriteMax: le.Uint32(b[id20TWRM:]), ResetTyp: le.Uint32(b[id20TCRST:]), ResetMax: le.Uint32(b[id20TCRSM:]),
			SectorSize: 4096} // the namespace's LBA format carries it, not the geometry
		return g.Normalize()
	}
	return Geometry{}, fmt.Errorf("identity: OCSSD revision not supported (%d)", b[0])
}

// Offsets in the NVMe Identify Controller (CNS 1) and Identify Namespace
// (CNS 0) structures that this controller fills.
const (
	idCtrlVID   = 0
	idCtrlSSVID = 2
	idCtrlSN    = 4
	idCtrlMN    = 24
	idCtrlFR    = 64
	idCtrlMDTS  = 77
	idCtrlSQES  = 512
	idCtrlCQES  = 513
	idCtrlNN    = 516
	idNsNSZE    = 0
	idNsNCAP    = 8
	idNsNUSE    = 16
	idNsNLBAF   = 25
	idNsFLBAS   = 26
	idNsLBAF0   = 128
	idNsVS      = 384
)

// controllerIdentity is Identify Controller: the CNEX vendor id the host
// driver checks, one namespace, 64-byte SQ and 16-byte CQ entries.
func controllerIdentity() []byte {
	b := make([]byte, IdentifySize)
	le := binary.LittleEndian
	le.PutUint16(b[idCtrlVID:], PCIVendorCNEX)
	le.PutUint16(b[idCtrlSSVID:], PCIVendorCNEX)
	copy(b[idCtrlSN:idCtrlSN+20], padded("KVMSPEC-OCSSD-0001", 20))
	copy(b[idCtrlMN:idCtrlMN+40], padded("kvmspec lightnvm model", 40))
	copy(b[idCtrlFR:idCtrlFR+8], padded("1.0", 8))
	b[idCtrlMDTS] = 0        // no transfer limit beyond the PRP list
	b[idCtrlSQES] = 6<<4 | 6 // max and required: 2^6 = 64 bytes
	b[idCtrlCQES] = 4<<4 | 4 // 2^4 = 16 bytes
	le.PutUint32(b[idCtrlNN:], 1)
	return b
}

// namespaceIdentity is Identify Namespace 1: its size in sectors, one LBA
// format of the sector size, and vs[0] = 1, which marked an OCSSD
// namespace to the Linux driver.
func (g Geometry) namespaceIdentity() []byte {
	b := make([]byte, IdentifySize)
	le := binary.LittleEndian
	n := uint64(g.TotalChunks()) * uint64(g.CLBA)
	le.PutUint64(b[idNsNSZE:], n)
	le.PutUint64(b[idNsNCAP:], n)
	le.PutUint64(b[idNsNUSE:], n)
	b[idNsNLBAF], b[idNsFLBAS] = 0, 0
	le.PutUint32(b[idNsLBAF0:], uint32(bits.TrailingZeros(uint(g.SectorSize)))<<16) // LBADS
	b[idNsVS] = 1
	return b
}

func padded(s string, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = ' '
	}
	copy(b, s)
	return b
}
