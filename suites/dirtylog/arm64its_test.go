package dirtylog

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The model of what an ITS save writes: where each entry goes and its
// value (the layout observed on KVM/arm64 6.12, ABI rev 0).
func TestITSSavedWords(t *testing.T) {
	w := itsDefault.savedWords()
	want := map[uint64]uint64{
		// DTEs: valid | next device | ITT>>8 <<5 | bits-1
		8 * 3:    1<<63 | 697<<49 | (a64DataGPA+itsITTs)>>8<<5 | 3,
		8 * 700:  1<<63 | 6300<<49 | (a64DataGPA+itsITTs+0x10000)>>8<<5 | 10,
		8 * 7000: 1<<63 | (a64DataGPA+itsITTs+0x20100)>>8<<5 | 1,
		// ITEs: next event | LPI | collection
		itsITTs + 0:                9<<48 | itsLPIBase<<16 | 3,
		itsITTs + 8*9:              (itsLPIBase+9)<<16 | 1,
		itsITTs + 0x10000 + 8:      1499<<48 | (itsLPIBase+108)<<16 | 3,
		itsITTs + 0x10000 + 8*1500: 40000<<16 | 1,
		itsITTs + 0x20100 + 8*2:    (itsLPIBase+208)<<16 | 1,
		// CTEs in MAPC order, then the terminator
		itsCollTab:      1<<63 | 3,
		itsCollTab + 8:  1<<63 | 1,
		itsCollTab + 16: 0,
	}
	if len(w) != len(want) {
		t.Errorf("%d words, want %d: %#x", len(w), len(want), w)
	}
	for off, v := range want {
		if got, ok := w[off]; !ok || got != v {
			t.Errorf("word at %#x: %#x (present %t), want %#x (%s)", off, got, ok, v, itsDescribe(off, v))
		}
	}
	if got, want := pagesOfWords(w), pagesOf(itsPages, 0, 1, 13, 16, 32, 48, 50, 64); !got.equal(want) {
		t.Errorf("pages %v, want %v", got, want)
	}
	for off := range w {
		if off >= itsPendTab || off/hv.PageSize >= itsGuestFirst {
			t.Errorf("word at %#x outside the table areas", off)
		}
	}
}

func TestITSSceneCommands(t *testing.T) {
	cmds := itsDefault.commands()
	// 2 MAPC, 3 MAPD, 5 MAPTI, SYNC
	kinds := map[uint64]int{}
	for _, c := range cmds {
		kinds[c[0]&0xff]++
	}
	if kinds[hv.ITSCmdMapC] != 2 || kinds[hv.ITSCmdMapD] != 3 || kinds[hv.ITSCmdMapTI] != 5 || kinds[hv.ITSCmdSync] != 1 || len(cmds) != 11 {
		t.Errorf("commands by kind %v of %d", kinds, len(cmds))
	}
	if cmds[0] != hv.ITSMapC(3, 0, true) || cmds[len(cmds)-1] != hv.ITSSync(0) {
		t.Errorf("first %#x, last %#x", cmds[0], cmds[len(cmds)-1])
	}
	for _, d := range itsDefault.devs {
		if d.itt%256 != 0 || d.itt < itsITTs || d.itt+8<<d.bits > itsPendTab {
			t.Errorf("device %d: ITT at %#x of %d bits outside the ITT area or unaligned", d.id, d.itt, d.bits)
		}
		for _, e := range d.events {
			if e.ev >= 1<<d.bits || e.lpi < itsLPIBase || e.lpi >= 1<<itsIDBits {
				t.Errorf("device %d event %+v out of range", d.id, e)
			}
		}
	}
}

func TestPendingBits(t *testing.T) {
	got := pendingBits([]itsEvent{{lpi: 8192}, {lpi: 8201}, {lpi: 8199}, {lpi: 40000}})
	want := map[uint64]byte{1024: 1 | 1<<7, 1025: 1 << 1, 5000: 1}
	if len(got) != len(want) {
		t.Errorf("%v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("byte %d: %#x, want %#x", k, got[k], v)
		}
	}
	if p := pendingPages(want); !p.equal(pagesOf(itsPages, 128, 129)) {
		t.Errorf("pending pages %v", p)
	}
}
