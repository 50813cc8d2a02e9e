package hv

import (
	"encoding/binary"
	"testing"
)

// The ITS commands against the GICv3 architecture's field positions,
// written out bit by bit here (DW0[7:0] the command, DW0[63:32] the
// DeviceID, DW1[31:0] the EventID, DW1[63:32] the pINTID, DW1[4:0] the
// MAPD size, DW2[15:0] the ICID, DW2[51:16] RDbase, DW2[51:8] the ITT
// address, DW2[63] Valid).
func TestITSCommands(t *testing.T) {
	for _, tc := range []struct {
		name string
		cmd  ITSCommand
		want ITSCommand
	}{
		{"MAPD dev 7000, ITT 0x40030100, 11 event bits", ITSMapD(7000, 0x4003_0100, 11, true),
			ITSCommand{0x08 | 7000<<32, 10, 1<<63 | 0x4003_0100, 0}},
		{"MAPD unmap", ITSMapD(3, 0x4002_0000, 1, false), ITSCommand{0x08 | 3<<32, 0, 0x4002_0000, 0}},
		{"MAPD drops the ITT address's low byte", ITSMapD(1, 0x4002_00ff, 32, true), ITSCommand{0x08 | 1<<32, 31, 1<<63 | 0x4002_0000, 0}},
		{"MAPC icid 5 to vCPU 1", ITSMapC(5, 1, true), ITSCommand{0x09, 0, 1<<63 | 1<<16 | 5, 0}},
		{"MAPTI", ITSMapTI(700, 1500, 8192+77, 5), ITSCommand{0x0a | 700<<32, 1500 | (8192+77)<<32, 5, 0}},
		{"INT", ITSInt(0xffff_ffff, 9), ITSCommand{0x03 | 0xffff_ffff<<32, 9, 0, 0}},
		{"SYNC", ITSSync(2), ITSCommand{0x05, 0, 2 << 16, 0}},
	} {
		if tc.cmd != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, tc.cmd, tc.want)
		}
		b := tc.cmd.Bytes()
		for i := range 4 {
			if d := binary.LittleEndian.Uint64(b[8*i:]); d != tc.want[i] {
				t.Errorf("%s: bytes of DW%d %#x, want %#x", tc.name, i, d, tc.want[i])
			}
		}
	}
	for _, op := range []ARM64ITSCtrl{ITSSaveTables, ITSRestoreTables, ITSReset, 9} {
		if op.String() == "" {
			t.Errorf("%d has no name", uint64(op))
		}
	}
}

func TestITSRegisterValues(t *testing.T) {
	for _, tc := range []struct {
		name      string
		got, want uint64
	}{
		{"BASER 1 page at 1 GiB", ITSBaserValue(0x4000_0000, 1), 1<<63 | 0x4000_0000 | 2<<8},
		{"BASER 4 pages, low bits of the address dropped", ITSBaserValue(0x4001_ffff, 4), 1<<63 | 0x4001_0000 | 2<<8 | 3},
		{"CBASER 2 pages", ITSCBaserValue(0x4003_1000, 2), 1<<63 | 0x4003_1000 | 1},
		{"PROPBASER 16 bits", GICRPropBaserValue(0x4005_0000, 16), 0x4005_0000 | 15},
		{"PENDBASER", GICRPendBaserValue(0x4006_8000), 0x4006_0000},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
}
