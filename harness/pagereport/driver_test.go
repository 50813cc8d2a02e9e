package pagereport

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

const (
	testRAMGPA = 0x8000_0000
	testMMIO   = 0xd000_0000
	touched    = 0x7e57_0000_0000_0001
)

// reporterRig is the guest reporter on the emu with a device attached and
// blocks 2 MiB blocks of RAM.
type reporterRig struct {
	g   *guest.Guest
	dev *Device
	rep *Reporter
	ram *hv.Memory
}

func newReporterRig(t *testing.T, blocks int, script []Op) *reporterRig {
	t.Helper()
	g, err := guest.New(emu.New(emu.Options{}), guest.Config{Mode: guest.CPL3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	ram, err := AddRAM(g, 1, testRAMGPA, uint64(blocks)*guest.Page2M, hv.Anonymous, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ram.Close() })
	dev, err := New(g.VM, Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.VM.Attach(dev, hv.Region{Space: hv.SpaceMMIO, Base: testMMIO, Size: RegionSize}); err != nil {
		t.Fatal(err)
	}
	var addrs []uint64
	for i := 0; i < blocks; i++ {
		addrs = append(addrs, testRAMGPA+uint64(i)*guest.Page2M)
	}
	rep, err := NewReporter(g, ReporterConfig{MMIO: testMMIO, Orders: []OrderBlocks{{Order: MinOrder, Blocks: addrs}}, Script: script})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Load(rep.Program()); err != nil {
		t.Fatal(err)
	}
	return &reporterRig{g: g, dev: dev, rep: rep, ram: ram}
}

// run runs the script, returning the SYNCs.
func (r *reporterRig) run(t *testing.T) [][]uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var syncs [][]uint64
	err := r.g.RunUntilDone(ctx, 0, func(u *guest.Ucall) error {
		syncs = append(syncs, u.Args)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return syncs
}

func opsFor(kind OpKind, from, to int, arg uint64) []Op {
	var out []Op
	for i := from; i < to; i++ {
		out = append(out, Op{Kind: kind, Block: i, Arg: arg})
	}
	return out
}

// TestReporterPolicy: the v5 high-water mark, batches of 32, flags only on
// success, a re-allocation clearing the flag, and a reported block reading
// zero in the guest.
func TestReporterPolicy(t *testing.T) {
	const blocks = 40
	var script []Op
	script = append(script, Op{Kind: OpInit, Arg: 1})
	script = append(script, opsFor(OpAlloc, 0, blocks, touched)...)
	script = append(script, opsFor(OpFree, 0, 31, 0)...)
	script = append(script, Op{Kind: OpSync, Arg: 31})
	script = append(script, Op{Kind: OpFree, Block: 31}) // the 32nd free: a report of 32
	script = append(script, Op{Kind: OpSync, Arg: 32})
	script = append(script, opsFor(OpFree, 32, blocks, 0)...) // 40 < 32 + 32: no report
	script = append(script, Op{Kind: OpSync, Arg: 40})
	script = append(script, Op{Kind: OpCheck, Block: 5, Arg: 5})
	script = append(script, Op{Kind: OpAlloc, Block: 5, Arg: touched})
	script = append(script, Op{Kind: OpCheck, Block: 5, Arg: 55})
	script = append(script, Op{Kind: OpFlush})
	script = append(script, Op{Kind: OpSync, Arg: 99})
	r := newReporterRig(t, blocks, script)
	syncs := r.run(t)

	want := [][]uint64{
		{StageInit, 1, StatusAcknowledge | StatusDriver | StatusFeaturesOK | StatusDriverOK, 1, DefaultQueueSize},
		{StageSync, 31, 0, 0, 0},
		{StageSync, 32, 1, 32, 0},
		{StageSync, 40, 1, 32, 0},
		{StageCheck, 5, 0, testRAMGPA + 5*guest.Page2M},
		{StageCheck, 55, touched, testRAMGPA + 5*guest.Page2M},
		// The flush reports the 8 blocks freed after the pass and not block 5.
		{StageSync, 99, 2, 40, 0},
	}
	if !slices.EqualFunc(syncs, want, slices.Equal) {
		t.Fatalf("syncs\n got %#x\nwant %#x", syncs, want)
	}
	st, err := r.rep.Order(0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Free != blocks-1 || st.Reported != blocks-1 {
		t.Errorf("order state free %d reported %d", st.Free, st.Reported)
	}
	for i, f := range st.Flags {
		want := uint64(BlockFree | BlockReported)
		if i == 5 {
			want = 0
		}
		if f != want {
			t.Errorf("block %d flags %#x, want %#x", i, f, want)
		}
	}
	s := r.dev.Stats()
	if s.Elements != 2 || s.Ranges != 40 || s.BytesDiscarded != 40*guest.Page2M || len(s.Ignored) != 0 {
		t.Errorf("device stats %+v", s)
	}
	res, err := r.ram.Resident(0, r.ram.Size())
	if err != nil {
		t.Fatal(err)
	}
	for p, in := range res {
		if in != (p/512 == 5) {
			t.Fatalf("page %d resident %v (only block 5 was re-touched)", p, in)
		}
	}
}

// TestReporterNotFlaggedOnFailure: a report the device refuses (its queue
// is broken) leaves the blocks unflagged and counts a failure.
func TestReporterNotFlaggedOnFailure(t *testing.T) {
	script := []Op{{Kind: OpInit}, {Kind: OpPost, Arg: 99}} // head 99 of 32: the device gives up
	script = append(script, opsFor(OpFree, 0, 32, 0)...)
	script = append(script, Op{Kind: OpSync, Arg: 1})
	r := newReporterRig(t, 32, script)
	syncs := r.run(t)
	if last := syncs[len(syncs)-1]; !slices.Equal(last, []uint64{StageSync, 1, 0, 0, 2}) {
		t.Fatalf("last sync %#x, want two failures and nothing reported", last)
	}
	st, _ := r.rep.Order(0)
	if st.Reported != 0 || slices.Contains(st.Flags, BlockFree|BlockReported) {
		t.Fatalf("blocks flagged after a failed report: %+v", st)
	}
	if s := r.dev.Stats(); s.NeedsReset != 1 || s.BytesDiscarded != 0 {
		t.Fatalf("device stats %+v", s)
	}
}

func TestNewReporterRefusesBadScript(t *testing.T) {
	g, err := guest.New(emu.New(emu.Options{}), guest.Config{Mode: guest.CPL3})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	orders := []OrderBlocks{{Order: MinOrder, Blocks: []uint64{testRAMGPA}}}
	for _, cfg := range []ReporterConfig{
		{MMIO: testMMIO, Orders: orders, Script: []Op{{Kind: OpFree, Block: 1}}},
		{MMIO: testMMIO, Orders: orders, Script: []Op{{Kind: OpAlloc, Order: 1}}},
		{MMIO: testMMIO, Orders: []OrderBlocks{{Order: MinOrder, Blocks: []uint64{testRAMGPA + 4096}}}},
	} {
		if _, err := NewReporter(g, cfg); err == nil {
			t.Errorf("accepted %+v", cfg)
		}
	}
}
