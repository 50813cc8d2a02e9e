package kvm

import (
	"encoding/binary"
	"testing"
)

func descBytes(flags uint32, size uint16, offset uint32, name string, nameSize int) []byte {
	b := make([]byte, 16+nameSize)
	binary.LittleEndian.PutUint32(b[0:], flags)
	binary.LittleEndian.PutUint16(b[6:], size)
	binary.LittleEndian.PutUint32(b[8:], offset)
	copy(b[16:], name)
	return b
}

func TestParseStatsDescs(t *testing.T) {
	buf := append(descBytes(0x10, 1, 0, "exits", 48), descBytes(0x4|0x20, 32, 8, "halt_wait_hist", 48)...)
	d, err := parseStatsDescs(buf, 2, 48)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0].name != "exits" || d[1].name != "halt_wait_hist" || d[1].size != 32 || d[1].offset != 8 {
		t.Fatalf("decoded %+v", d)
	}
	for _, bad := range []struct{ n, nameSize int }{{3, 48}, {-1, 48}, {1, -20}, {2, 64}} {
		if _, err := parseStatsDescs(buf, bad.n, bad.nameSize); err == nil {
			t.Errorf("parseStatsDescs(n=%d, nameSize=%d) accepted a short buffer", bad.n, bad.nameSize)
		}
	}
}

func FuzzParseStatsDescs(f *testing.F) {
	f.Add(descBytes(0, 1, 0, "exits", 48), 1, 48)
	f.Add([]byte{}, 0, 0)
	f.Fuzz(func(t *testing.T, buf []byte, n, nameSize int) {
		d, err := parseStatsDescs(buf, n, nameSize)
		if err == nil && len(d) != n {
			t.Fatalf("%d descriptors for n=%d", len(d), n)
		}
	})
}
