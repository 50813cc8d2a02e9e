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
//
// It replays as a stream and keeps O(pages) state however long the run:
// the PRNG state after the writes replayed so far, the last of them to
// each page, and the pages written since the last window. (A list of
// every write's state grew by ~10 MB/s on the emu.) The check asks in
// order: the next write may be looked at without replaying it, and a
// question about writes already passed is answered by replaying from the
// seed, slowly, so no order of questions gives a wrong answer.
type writeModel struct {
	pages uint64
	seed  xorshift
	n     uint64   // writes replayed
	cur   xorshift // state(n)
	last  []uint64 // last[p]: the last replayed write to page p, 0 if none
	since *pageSet // pages of writes (mark, n]
	mark  uint64
}

func newWriteModel(seed uint64, pages uint64) *writeModel {
	return &writeModel{pages: pages, seed: xorshift(seed), cur: xorshift(seed),
		last: make([]uint64, pages), since: newPageSet(pages)}
}

// advance replays writes up to and including write to.
func (m *writeModel) advance(to uint64) {
	for m.n < to {
		m.n++
		p := m.cur.next() % m.pages
		m.last[p] = m.n
		m.since.add(p)
	}
}

// replay calls f with k and state(k) for k = 1..to, from the seed: the
// slow way, for questions about writes the stream has passed.
func (m *writeModel) replay(to uint64, f func(k, state uint64)) {
	x := m.seed
	for k := uint64(1); k <= to; k++ {
		f(k, x.next())
	}
}

// state is the PRNG state after k writes (the seed for k = 0). Writes
// before k are replayed for good; write k itself is only looked at.
func (m *writeModel) state(k uint64) uint64 {
	if k > m.n+1 {
		m.advance(k - 1)
	}
	switch k {
	case m.n:
		return uint64(m.cur)
	case m.n + 1:
		x := m.cur
		return x.next()
	}
	st := uint64(m.seed)
	m.replay(k, func(_, s uint64) { st = s })
	return st
}

func (m *writeModel) page(k uint64) uint64 { return m.state(k) % m.pages }

// window returns the distinct pages of writes [from, to]. Consecutive
// windows (from just after the previous one's end) come from the stream.
func (m *writeModel) window(from, to uint64) *pageSet {
	if from == m.mark+1 && to >= m.n {
		m.advance(to)
		s := m.since
		m.since, m.mark = newPageSet(m.pages), to
		return s
	}
	s := newPageSet(m.pages)
	m.replay(to, func(k, st uint64) {
		if k >= from {
			s.add(st % m.pages)
		}
	})
	return s
}

// lastWrite returns the most recent of writes [1, upto] that went to page p.
func (m *writeModel) lastWrite(p, upto uint64) (uint64, bool) {
	if p >= m.pages {
		return 0, false
	}
	if upto >= m.n {
		m.advance(upto)
		return m.last[p], m.last[p] != 0
	}
	var last uint64
	m.replay(upto, func(k, st uint64) {
		if st%m.pages == p {
			last = k
		}
	})
	return last, last != 0
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
