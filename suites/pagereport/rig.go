package pagereport

import (
	"context"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/pagereport"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// The test machine: the standard guest's slot 0 holds the rings and the
// driver's data; the guest RAM the reporter reports from is its own slot,
// so it has its own backing, flags and missing-page handler.
const (
	ramSlot  = 1
	ramGPA   = 0x8000_0000
	mmioBase = 0xd000_0000
	block    = guest.Page2M // an order-9 block
	pagesPer = block / hv.PageSize

	// touched is what the guest writes into the first quadword of each
	// page it allocates.
	touched = 0x7e57_0000_0000_0001
)

// rigConfig shapes a rig.
type rigConfig struct {
	blocks  int // order-9 blocks of guest RAM
	backing hv.Backing
	flags   hv.MemFlags // of the RAM slot
	vm      hv.VMConfig
	vcpus   int
	dev     pagereport.Config
	// queueSize, features and poison are the guest driver's choices
	// (pagereport.ReporterConfig; zero values take its defaults).
	queueSize int
	features  uint64
	poison    uint32
	// orders overrides the reporter's block tables (default: one order-9
	// table over the whole RAM).
	orders []pagereport.OrderBlocks
	script []pagereport.Op
	// others emits code for vCPUs 1.. (RDI is the vCPU index); nil: none.
	others func(g *guest.Guest, p *guest.Program)
}

// rig is one guest with guest RAM, the device and the guest reporter.
type rig struct {
	b   *framework.Backend
	g   *guest.Guest
	ram *hv.Memory
	dev *pagereport.Device
	rep *pagereport.Reporter
}

// newRig builds the rig; specs are skipped on backends whose VMs do not
// give devices guest memory with dirty tracking (contract v2).
func newRig(b *framework.Backend, cfg rigConfig) *rig {
	GinkgoHelper()
	b.Require(hv.CapGuestMemoryTrack)
	if cfg.vcpus == 0 {
		cfg.vcpus = 1
	}
	if cfg.vcpus > 1 {
		b.Require(hv.CapMultiVCPU)
	}
	// Cleanups run last-in first-out: registered before the guest's, this
	// one unmaps the RAM after the VM that maps it is closed.
	var ram *hv.Memory
	DeferCleanup(func() {
		if ram != nil {
			Expect(ram.Close()).To(Succeed())
		}
	})
	g := b.NewGuest(guest.Config{Mode: guest.CPL3, VCPUs: cfg.vcpus, VM: cfg.vm})
	ram, err := pagereport.AddRAM(g, ramSlot, ramGPA, uint64(cfg.blocks)*block, cfg.backing, cfg.flags)
	Expect(err).NotTo(HaveOccurred())
	dev, err := pagereport.New(g.VM, cfg.dev)
	Expect(err).NotTo(HaveOccurred())
	Expect(g.VM.Attach(dev, hv.Region{Space: hv.SpaceMMIO, Base: mmioBase, Size: pagereport.RegionSize})).To(Succeed())
	orders := cfg.orders
	if orders == nil {
		orders = []pagereport.OrderBlocks{{Order: pagereport.MinOrder, Blocks: blockAddrs(0, cfg.blocks)}}
	}
	rep, err := pagereport.NewReporter(g, pagereport.ReporterConfig{MMIO: mmioBase, Orders: orders, Script: cfg.script,
		QueueSize: cfg.queueSize, Features: cfg.features, Poison: cfg.poison})
	Expect(err).NotTo(HaveOccurred())
	p := g.Program()
	others := p.NewLabel()
	if cfg.others != nil {
		p.Cmp(asm.RDI, asm.Imm(0))
		p.Jcc(asm.CondNE, others)
	}
	rep.Emit(p)
	if cfg.others != nil {
		p.Bind(others)
		cfg.others(g, p)
	}
	Expect(g.Load(p)).To(Succeed())
	return &rig{b: b, g: g, ram: ram, dev: dev, rep: rep}
}

// blockAddrs are the addresses of order-9 blocks [from, to) of guest RAM.
func blockAddrs(from, to int) []uint64 {
	var out []uint64
	for i := from; i < to; i++ {
		out = append(out, ramGPA+uint64(i)*block)
	}
	return out
}

// run runs vCPU 0's script (and the other vCPUs) to DONE, calling onSync
// for each SYNC of the reporter.
func (r *rig) run(ctx context.Context, onSync func(u *guest.Ucall) error) {
	GinkgoHelper()
	ctx = framework.GuestContext(ctx, 5*time.Minute)
	if onSync == nil {
		onSync = func(*guest.Ucall) error { return nil }
	}
	var err error
	if len(r.g.VCPUs) == 1 {
		err = r.g.RunUntilDone(ctx, 0, onSync)
	} else {
		err = r.g.RunAll(ctx, onSync)
	}
	Expect(err).NotTo(HaveOccurred(), "guest run; device stats %+v", r.dev.Stats())
}

// runSyncs runs the rig, calls atSync (if not nil) at each of the
// reporter's OpSync steps, and returns what each OpCheck read, by the
// step's argument.
func (r *rig) runSyncs(ctx context.Context, atSync func(u *guest.Ucall)) map[uint64]uint64 {
	GinkgoHelper()
	var mu sync.Mutex // other vCPUs SYNC concurrently
	read := map[uint64]uint64{}
	r.run(ctx, func(u *guest.Ucall) error {
		switch {
		case u.Stage() == pagereport.StageSync && atSync != nil:
			atSync(u)
		case u.Stage() == pagereport.StageCheck && len(u.Args) >= 3:
			mu.Lock()
			read[syncArg(u)] = u.Args[2]
			mu.Unlock()
		}
		return nil
	})
	return read
}

// resident is how many bytes of guest RAM the host holds (mincore).
func (r *rig) resident() uint64 {
	GinkgoHelper()
	res, err := r.ram.Resident(0, r.ram.Size())
	Expect(err).NotTo(HaveOccurred())
	n := uint64(0)
	for _, in := range res {
		if in {
			n += hv.PageSize
		}
	}
	return n
}

// counters are the guest reporter's own counts.
func (r *rig) counters() pagereport.Counters {
	GinkgoHelper()
	c, err := r.rep.Counters()
	Expect(err).NotTo(HaveOccurred())
	return c
}

// Script builders.

func ops(kind pagereport.OpKind, from, to int, arg uint64) []pagereport.Op {
	var out []pagereport.Op
	for i := from; i < to; i++ {
		out = append(out, pagereport.Op{Kind: kind, Block: i, Arg: arg})
	}
	return out
}

func script(parts ...[]pagereport.Op) []pagereport.Op {
	var out []pagereport.Op
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// checks reads blocks [from, to), each with argument base+block.
func checks(from, to int, base uint64) []pagereport.Op {
	var out []pagereport.Op
	for i := from; i < to; i++ {
		out = append(out, pagereport.Op{Kind: pagereport.OpCheck, Block: i, Arg: base + uint64(i)})
	}
	return out
}

func op(kind pagereport.OpKind, blk int, arg uint64) []pagereport.Op {
	return []pagereport.Op{{Kind: kind, Block: blk, Arg: arg}}
}

// syncArg is a reporter SYNC's step argument (0 for other ucalls).
func syncArg(u *guest.Ucall) uint64 {
	if len(u.Args) < 2 {
		return 0
	}
	return u.Args[1]
}
