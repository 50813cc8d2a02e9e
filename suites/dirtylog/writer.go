package dirtylog

import (
	"fmt"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// Test slots live above slot 0 (the standard guest, at most 2 GiB) in
// their own 256 MiB windows; large ones (perf) at 4 GiB.
const (
	slotWindowBase = 0x4000_0000
	slotWindowSize = 0x1000_0000
	largeSlotGPA   = 0x1_0000_0000
)

// slotGPA is where test slot id (1, 2, …) is placed.
func slotGPA(id uint32) uint64 { return slotWindowBase + uint64(id-1)*slotWindowSize }

// Offsets in the control block a host and a writer guest share (slot 0,
// so the block itself is never logged).
const (
	ctlStop   = 0  // host → guest: stop at the next write and SYNC
	ctlIter   = 8  // host → guest: the value to write (the iteration)
	ctlWrites = 16 // guest → host: writes retired so far
	ctlSize   = 64
)

// Stages of the writer's SYNC.
const stageStopped = 1

// xorshift is the guest's random number generator, Marsaglia's xorshift64
// (shifts 13, 7, 17), replayed on the host so it knows which page every
// guest write went to.
type xorshift uint64

func (x *xorshift) next() uint64 {
	v := uint64(*x)
	v ^= v << 13
	v ^= v >> 7
	v ^= v << 17
	*x = xorshift(v)
	return v
}

// seedState turns a run seed into a non-zero xorshift state (splitmix64,
// so nearby seeds give unrelated sequences).
func seedState(seed int64) uint64 {
	z := uint64(seed) + 0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	z ^= z >> 31
	if z == 0 {
		z = 1
	}
	return z
}

// emitXorshift advances the state in register st as xorshift.next does.
func emitXorshift(p *guest.Program, st, tmp asm.Reg) {
	for _, s := range []struct {
		left bool
		n    int64
	}{{true, 13}, {false, 7}, {true, 17}} {
		p.Mov(tmp, st)
		if s.left {
			p.Shl(tmp, asm.Imm(s.n))
		} else {
			p.Shr(tmp, asm.Imm(s.n))
		}
		p.Xor(st, tmp)
	}
}

// writeModel replays the random writer: write k (counting from 1) goes to
// page state(k) mod pages, where state(k) is the PRNG state after k steps.
type writeModel struct {
	pages  uint64
	rng    xorshift
	states []uint64 // states[k-1] = state(k)
}

func newWriteModel(seed uint64, pages uint64) *writeModel {
	return &writeModel{pages: pages, rng: xorshift(seed)}
}

func (m *writeModel) state(k uint64) uint64 {
	for uint64(len(m.states)) < k {
		m.states = append(m.states, m.rng.next())
	}
	return m.states[k-1]
}

func (m *writeModel) page(k uint64) uint64 { return m.state(k) % m.pages }

// window returns the distinct pages of writes [from, to].
func (m *writeModel) window(from, to uint64) *pageSet {
	s := newPageSet(m.pages)
	for k := from; k <= to; k++ {
		s.add(m.page(k))
	}
	return s
}

// lastWrite returns the most recent of writes [1, upto] that went to page p.
func (m *writeModel) lastWrite(p, upto uint64) (uint64, bool) {
	for k := upto; k >= 1; k-- {
		if m.page(k) == p {
			return k, true
		}
	}
	return 0, false
}

// writerProgram is the random writer with the labels of its store and of
// the count after it: where a vCPU stopped at a ring-full exit tells
// whether the store that pushed the last entry has retired.
type writerProgram struct {
	*guest.Program
	store, count *asm.Label
}

// randomWriter builds the kernel test's guest: until the host sets the
// stop flag, write the current iteration into the first quadword of a
// random page of [base, base+pages*4K) and count the write; on stop,
// SYNC(stageStopped, PRNG state) and go on when the host resumes it.
//
// The iteration is loaded into RAX before the store, so a store that
// faults, exits and is retried later writes the value it loaded: the
// case the kernel test's "last ring entry" tolerances are about.
func randomWriter(g *guest.Guest, ctl, base, pages, state uint64) *writerProgram {
	p := &writerProgram{Program: g.Program()}
	p.store, p.count = p.NewLabel(), p.NewLabel()
	p.MovAbs(asm.RBX, base)
	p.MovAbs(asm.RCX, pages)
	p.MovAbs(asm.RSI, state)
	p.MovAbs(asm.R8, ctl)
	loop := p.Here()
	stop := p.NewLabel()
	p.Cmp(asm.Q(asm.R8, ctlStop), asm.Imm(0))
	p.Jcc(asm.CondNE, stop)
	emitXorshift(p.Program, asm.RSI, asm.RAX)
	p.Mov(asm.RAX, asm.RSI)
	p.Xor(asm.EDX, asm.EDX)
	p.Div(asm.RCX) // RDX = state mod pages
	p.Shl(asm.RDX, asm.Imm(12))
	p.Add(asm.RDX, asm.RBX)
	p.Mov(asm.RAX, asm.Q(asm.R8, ctlIter))
	p.Bind(p.store)
	p.Mov(asm.Q(asm.RDX, 0), asm.RAX)
	p.Bind(p.count)
	p.Inc(asm.Q(asm.R8, ctlWrites))
	p.Jmp(loop)
	p.Bind(stop)
	p.Sync(stageStopped, asm.RSI)
	p.Jmp(loop)
	return p
}

// mapSlot maps a test slot into the guest identity-mapped, writable and
// user-accessible. 4 KiB pages as the kernel test uses; 2 MiB pages for
// the aligned bulk of slots too large for the page-table pool.
func mapSlot(g *guest.Guest, gpa, size uint64) error {
	const flags = guest.PTEWrite | guest.PTEUser
	if size < 512<<20 {
		return g.PT.Map(gpa, gpa, size, flags)
	}
	bulk := size &^ (guest.Page2M - 1)
	if gpa%guest.Page2M != 0 {
		return fmt.Errorf("map slot at %#x: not 2 MiB aligned", gpa)
	}
	if err := g.PT.MapSized(gpa, gpa, bulk, guest.Page2M, flags); err != nil {
		return err
	}
	if bulk == size {
		return nil
	}
	return g.PT.Map(gpa+bulk, gpa+bulk, size-bulk, flags)
}

// pageAddr is the guest address of page p of a slot at gpa.
func pageAddr(gpa, p uint64) uint64 { return gpa + p*hv.PageSize }
