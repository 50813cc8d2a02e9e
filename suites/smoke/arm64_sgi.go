package smoke

// Software-generated interrupts between the vCPUs of an arm64 guest: a
// vCPU writes ICC_SGI1R_EL1 (a64guest.SGI1R: an INTID 0-15 and a target
// list, or IRM=1 for every vCPU but itself) and the vGICv3 makes the SGI
// pending on the targets, which take it through the guest's IRQ handler
// (a64guest.GICv3). The host learns who took what from each vCPU's IRQ
// log in guest memory, and the vCPUs pace one another through words of a
// shared page (a64guest.WaitWord, AtomicAdd), never through time: a wait
// is bounded only so that a lost SGI fails the spec with a guest assert
// instead of hanging it, and the quiet window at the end gives a
// duplicate the chance to show.

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

// Words of the shared page: the start barrier's count, the count of
// senders (or turns) done, the message-passing spec's data and the count
// of messages its receiver has read.
const (
	sgiReady = 0x00
	sgiDone  = 0x08
	sgiData  = 0x10
	sgiAck   = 0x18
	// sgiRounds is how many messages the ordering spec passes.
	sgiRounds = 64
	// a64SGIWait bounds each wait of one vCPU for others (virtual
	// counter time): long, because under TCG the vCPUs it waits for
	// share two emulated CPUs with the spinning ones; the spec timeout
	// still cuts a hang.
	a64SGIWait = 20 * time.Second
)

// sgiGuest is an arm64 guest whose vCPUs bring up the vGICv3 with every
// SGI enabled, and the program they all run (X20 is the vCPU's index).
type sgiGuest struct {
	g      *a64guest.Guest
	gic    *a64guest.GICv3
	p      *a64guest.Program
	mpidr  []uint64 // each vCPU's MPIDR_EL1, read by ONE_REG
	shared uint64   // the shared page
	n      int
}

// intids is a list of INTIDs as a64guest.GICv3.IRQs returns it (nil when
// empty).
func intids(ids ...uint32) []uint32 { return ids }

func arm64SGISpecs(b *framework.Backend) {
	// newSGIGuest builds an n-vCPU guest; bodyFor gives the IRQ handler's
	// body (nil: none) once the shared page is known. Each vCPU runs
	// Init, enables SGIs 0-15, runs setup (if any) for its index, unmasks
	// IRQs and, with barrier, waits for every vCPU to get there.
	newSGIGuest := func(n int, bodyFor func(shared uint64) a64guest.IRQBody, barrier bool, setup func(s *sgiGuest, i int)) *sgiGuest {
		GinkgoHelper()
		b.Require(hv.CapVGICv3)
		g := b.NewARM64Guest(a64guest.Config{VCPUs: n})
		shared, err := g.Alloc(g.PageSize(), g.PageSize())
		Expect(err).NotTo(HaveOccurred())
		var body a64guest.IRQBody
		if bodyFor != nil {
			body = bodyFor(shared)
		}
		gic, err := g.NewGICv3(a64GICD, a64GICR, 0, body)
		Expect(err).NotTo(HaveOccurred())
		s := &sgiGuest{g: g, gic: gic, p: g.Program(), shared: shared, n: n}
		for i := range n {
			m, err := g.Reg(i).GetOneReg(hv.ARM64MPIDREL1)
			Expect(err).NotTo(HaveOccurred(), "MPIDR_EL1 of vCPU %d", i)
			s.mpidr = append(s.mpidr, m)
		}
		p := s.p
		p.Mov(a64.X20, a64.X0)
		gic.Init(p)
		gic.EnableSGIs(p, 0xffff)
		if setup != nil {
			s.each(func(i int) { setup(s, i) })
		}
		p.MsrDAIFClr(2)
		if barrier {
			a64guest.AtomicAdd(p, shared+sgiReady, 1)
			s.wait(a64.X2, shared+sgiReady, a64.Imm(n), "every vCPU at the start barrier")
		}
		return s
	}
	// to is the SGI1R of intid to the vCPUs named.
	to := func(s *sgiGuest, intid uint8, vcpus ...int) a64guest.SGI1R {
		GinkgoHelper()
		var ms []uint64
		for _, v := range vcpus {
			ms = append(ms, s.mpidr[v])
		}
		r, err := a64guest.SGITo(intid, ms...)
		Expect(err).NotTo(HaveOccurred())
		return r
	}
	// run runs every vCPU to DONE and checks each one's IRQ log: the
	// INTIDs in the order taken, no spurious acknowledge.
	run := func(ctx SpecContext, s *sgiGuest, onSync func(*guest.Ucall) error, want ...[]uint32) {
		GinkgoHelper()
		Expect(s.g.Load(s.p)).To(Succeed())
		var mu sync.Mutex
		Expect(s.g.RunAll(ctx, func(u *guest.Ucall) error {
			mu.Lock()
			defer mu.Unlock()
			if onSync == nil {
				return fmt.Errorf("vcpu %d: unexpected SYNC stage %d", u.VCPU, u.Stage())
			}
			return onSync(u)
		})).To(Succeed())
		checkSGILogs(s, want)
	}

	It("ICC_SGI1R_EL1: an SGI one vCPU sends another is taken there once with its own INTID, each of 0-15, by neither the sender nor a bystander", func(ctx SpecContext) {
		s := newSGIGuest(3, nil, true, nil)
		s.each(func(i int) {
			if i != 0 {
				return
			}
			for k := range uint8(a64guest.NumSGIs) {
				s.gic.SendSGI(s.p, to(s, k, 1))
				s.wait(a64.X2, s.g.UserBlock(1)+a64guest.IRQCount, a64.Imm(int64(k)+1), fmt.Sprintf("vCPU 1 taking SGI %d", k))
			}
		})
		s.finish(1, 0)
		var all []uint32
		for k := range uint32(a64guest.NumSGIs) {
			all = append(all, k)
		}
		run(ctx, s, nil, intids(), all, intids())
	}, SpecTimeout(arm64SpecTimeout))

	DescribeTable("ICC_SGI1R_EL1.IRM=1: each vCPU in turn broadcasts an SGI, taken once by every other vCPU and never by the sender",
		func(ctx SpecContext, n int) {
			// vCPU k broadcasts SGI 8+k in turn k, waits until every other
			// vCPU has taken it, then passes the turn: vCPU j's log is
			// every SGI but its own, in turn order.
			s := newSGIGuest(n, nil, true, nil)
			s.each(func(k int) {
				s.wait(a64.X2, s.shared+sgiDone, a64.Imm(int64(k)), fmt.Sprintf("turn %d", k))
				s.gic.SendSGI(s.p, a64guest.SGIBroadcast(uint8(8+k)))
				for j := range n {
					if j == k {
						continue
					}
					taken := k + 1 // turns 0..k, but j's own
					if j <= k {
						taken--
					}
					s.wait(a64.X2, s.g.UserBlock(j)+a64guest.IRQCount, a64.Imm(int64(taken)), fmt.Sprintf("vCPU %d taking the broadcast of vCPU %d", j, k))
				}
				a64guest.AtomicAdd(s.p, s.shared+sgiDone, 1) // the next turn
			})
			s.finish(n)
			want := make([][]uint32, n)
			for j := range n {
				for k := range n {
					if k != j {
						want[j] = append(want[j], uint32(8+k))
					}
				}
			}
			run(ctx, s, nil, want...)
		},
		Entry("2 vCPUs", 2, SpecTimeout(arm64SpecTimeout)),
		Entry("4 vCPUs", 4, SpecTimeout(arm64SpecTimeout)),
	)

	It("ICC_SGI1R_EL1: one write whose target list names two vCPUs makes the SGI pending on both, each taking it once, and on no other", func(ctx SpecContext) {
		s := newSGIGuest(4, nil, true, nil)
		s.each(func(i int) {
			if i != 0 {
				return
			}
			s.gic.SendSGI(s.p, to(s, 6, 1, 3))
			s.wait(a64.X2, s.g.UserBlock(1)+a64guest.IRQCount, a64.Imm(1), "vCPU 1 taking SGI 6")
			s.wait(a64.X2, s.g.UserBlock(3)+a64guest.IRQCount, a64.Imm(1), "vCPU 3 taking SGI 6")
		})
		s.finish(1, 0)
		run(ctx, s, nil, intids(), intids(6), intids(), intids(6))
	}, SpecTimeout(arm64SpecTimeout))

	It("ICC_SGI1R_EL1: an SGI the target has disabled (GICR_ICENABLER0) stays pending in its GICR_ISPENDR0 and is taken once after GICR_ISENABLER0", func(ctx SpecContext) {
		const sgi = 9
		s := newSGIGuest(2, nil, true, func(s *sgiGuest, i int) {
			if i == 1 {
				s.gic.DisableSGIs(s.p, 1<<sgi)
			}
		})
		p := s.p
		s.each(func(i int) {
			if i == 0 {
				s.gic.SendSGI(p, to(s, sgi, 1))
				return
			}
			s.gic.WaitSGIPending(p, a64.X21, 1<<sgi, a64IRQWait)
			p.Tst(a64.X21, a64.Imm(1<<sgi))
			p.Assert(a64.NE, "the SGI never showed pending in GICR_ISPENDR0", a64.X21)
			a64guest.SpinFor(p, a64IRQQuiet) // a disabled SGI would be taken by now
			p.Ldr(a64.X22, a64.Ptr(a64.X28, a64guest.IRQCount))
			s.gic.EnableSGIs(p, 1<<sgi)
			s.gic.WaitIRQs(p, a64.X23, 1, a64IRQWait)
			s.gic.ReadSGIPending(p, a64.X24)
			p.Sync(2, a64.X21, a64.X22, a64.X23, a64.X24)
		})
		s.finish(1, 0)
		var got []uint64
		run(ctx, s, func(u *guest.Ucall) error {
			if u.VCPU != 1 || u.Stage() != 2 {
				return fmt.Errorf("vcpu %d: unexpected SYNC stage %d", u.VCPU, u.Stage())
			}
			got = append([]uint64(nil), u.Args[1:5]...)
			return nil
		}, intids(), intids(sgi))
		Expect(got).To(HaveLen(4))
		Expect([]uint64{got[0] & 0xffff, got[1], got[2], got[3] & 0xffff}).To(Equal([]uint64{1 << sgi, 0, 1, 0}),
			"vCPU 1: pending SGIs while disabled (GICR_ISPENDR0 %#x), taken while disabled, taken after enabling, pending SGIs after (GICR_ISPENDR0 %#x)", got[0], got[3])
	}, SpecTimeout(arm64SpecTimeout))

	It("ICC_SGI1R_EL1: an SGI a vCPU sends to itself is taken by it once", func(ctx SpecContext) {
		s := newSGIGuest(2, nil, true, nil)
		s.each(func(i int) {
			if i != 1 {
				return
			}
			s.gic.SendSGI(s.p, to(s, 4, 1))
			s.wait(a64.X2, s.g.UserBlock(1)+a64guest.IRQCount, a64.Imm(1), "vCPU 1 taking its own SGI 4")
		})
		s.finish(1, 1)
		run(ctx, s, nil, intids(), intids(4))
	}, SpecTimeout(arm64SpecTimeout))

	It(fmt.Sprintf("ICC_SGI1R_EL1: a store, DSB, then an SGI: the target's handler sees the store (message passing, %d rounds)", sgiRounds), func(ctx SpecContext) {
		// vCPU 0 stores round r into the data word, completes it with
		// DSB ISHST, sends SGI 2 to vCPU 1 and waits until vCPU 1's
		// handler has read it; the handler loads the word, keeps what it
		// saw in its scratch area (entry count-1), which the host reads
		// back, and then releases its count into the ack word. (Waiting
		// for the handler's entry count instead raced: the entry counts
		// before the body loads, so the next round's store could land
		// first; seen once in about 20 runs under TCG.)
		const sgi = 2
		body := func(shared uint64) a64guest.IRQBody {
			return func(p *a64guest.Program) {
				full := p.NewLabel()
				p.Mov(a64.X9, a64.Imm(int64(shared+sgiData)))
				p.Ldr(a64.X10, a64.Ptr(a64.X9, 0))
				p.Ldr(a64.X11, a64.Ptr(a64.X28, a64guest.IRQCount))
				p.Cmp(a64.X11, a64.Imm((a64guest.UserStackLimit-a64guest.UserScratch)/8))
				p.Bcond(a64.HI, full)
				p.Add(a64.X12, a64.X28, a64.Imm(a64guest.UserScratch-8))
				p.Str(a64.X10, a64.Index(a64.X12, a64.X11, a64.ExtLSL, true))
				p.Bind(full)
				// Release: the load above is done before the sender sees this.
				p.Add(a64.X12, a64.X9, a64.Imm(sgiAck-sgiData))
				p.Stlr(a64.X11, a64.X12)
			}
		}
		s := newSGIGuest(2, body, true, nil)
		p := s.p
		s.each(func(i int) {
			if i != 0 {
				return
			}
			p.Mov(a64.X21, a64.Imm(1))
			p.Mov(a64.X22, a64.Imm(int64(s.shared+sgiData)))
			round := p.Here()
			p.Str(a64.X21, a64.Ptr(a64.X22, 0))
			p.Dsb(a64.ISHST)
			s.gic.SendSGI(p, to(s, sgi, 1))
			s.wait(a64.X2, s.shared+sgiAck, a64.X21, "vCPU 1's handler reading this round's message")
			p.Add(a64.X21, a64.X21, a64.Imm(1))
			p.Cmp(a64.X21, a64.Imm(sgiRounds))
			p.Bcond(a64.LS, round)
		})
		s.finish(1, 0)
		want := make([]uint32, sgiRounds)
		for i := range want {
			want[i] = sgi
		}
		run(ctx, s, nil, intids(), want)
		raw := make([]byte, 8*sgiRounds)
		Expect(s.g.VM.ReadGPA(s.g.UserBlock(1)+a64guest.UserScratch, raw)).To(Succeed())
		seen, wantSeen := make([]uint64, sgiRounds), make([]uint64, sgiRounds)
		for i := range seen {
			seen[i] = binary.LittleEndian.Uint64(raw[8*i:])
			wantSeen[i] = uint64(i + 1)
		}
		Expect(seen).To(Equal(wantSeen), "the data word vCPU 1's handler saw at each SGI (vCPU 0 stored round r before sending the r-th)")
	}, SpecTimeout(arm64SpecTimeout))

	It("ICC_SGI1R_EL1: the host reads the SGI pending in the stopped target's GICR_ISPENDR0 through the vGIC device (KVM_DEV_ARM_VGIC_GRP_REDIST_REGS), then the target takes it once", func(ctx SpecContext) {
		// The vCPUs run one at a time (g.Run), so none is inside KVM_RUN
		// when the host reads the redistributors.
		const sgi = 11
		s := newSGIGuest(2, nil, false, nil)
		rd, ok := s.g.VM.(hv.ARM64ITSVM)
		if !ok {
			Skip(fmt.Sprintf("%s: no host access to the redistributor registers (hv.ARM64ITSVM)", b.Name))
		}
		p := s.p
		s.each(func(i int) {
			p.Sync(1)
			if i == 0 {
				s.gic.SendSGI(p, to(s, sgi, 1))
				s.gic.ReadSGIPending(p, a64.X22)
				p.Sync(2, a64.X22)
				return
			}
			s.gic.WaitIRQs(p, a64.X21, 1, a64IRQWait)
			a64guest.SpinFor(p, a64IRQQuiet)
			p.Ldr(a64.X21, a64.Ptr(a64.X28, a64guest.IRQCount))
			s.gic.ReadSGIPending(p, a64.X22)
			p.Sync(2, a64.X21, a64.X22)
		})
		p.Done()
		Expect(s.g.Load(p)).To(Succeed())
		step := func(i int, stage uint64) *guest.Ucall {
			GinkgoHelper()
			ev, err := s.g.Run(ctx, i)
			Expect(err).NotTo(HaveOccurred(), "vCPU %d", i)
			if ev.Exit != nil {
				Fail(s.g.Unexpected(i, ev.Exit).Error())
			}
			Expect([]any{ev.Ucall.Cmd, ev.Ucall.Stage()}).To(Equal([]any{guest.UcallSync, stage}), "vCPU %d's stop", i)
			return ev.Ucall
		}
		pending := func(i int) uint32 {
			GinkgoHelper()
			v, err := rd.GetRedistReg(i, a64guest.GICRISPENDR0)
			Expect(err).NotTo(HaveOccurred())
			return v & 0xffff
		}
		step(1, 1)
		step(0, 1)
		Expect(step(0, 2).Args[1]&0xffff).To(BeZero(), "SGIs pending in the sender's own GICR_ISPENDR0")
		Expect([]uint32{pending(0), pending(1)}).To(Equal([]uint32{0, 1 << sgi}), "SGIs pending in the redistributors of vCPUs 0 and 1, both stopped")
		_, count, _, err := s.gic.IRQs(1)
		Expect(err).NotTo(HaveOccurred())
		Expect(count).To(BeZero(), "interrupts the stopped target took")
		u := step(1, 2)
		Expect([]uint64{u.Args[1], u.Args[2] & 0xffff}).To(Equal([]uint64{1, 0}), "vCPU 1: interrupts taken once running, SGIs pending in its GICR_ISPENDR0 after")
		Expect(pending(1)).To(BeZero(), "SGIs pending in vCPU 1's redistributor after it took the SGI")
		for i := range 2 {
			ev, err := s.g.Run(ctx, i)
			Expect(err).NotTo(HaveOccurred())
			Expect(ev.Exit).To(BeNil())
			Expect(ev.Ucall.Cmd).To(Equal(guest.UcallDone), "vCPU %d's last stop", i)
		}
		checkSGILogs(s, [][]uint32{intids(), intids(sgi)})
	}, SpecTimeout(arm64SpecTimeout))
}

// each emits f's code for each vCPU, run by that vCPU alone (X20 = its
// index).
func (s *sgiGuest) each(f func(i int)) {
	for i := range s.n {
		next := s.p.NewLabel()
		s.p.Cmp(a64.X20, a64.Imm(int64(i)))
		s.p.Bcond(a64.NE, next)
		f(i)
		s.p.Bind(next)
	}
}

// wait emits a bounded wait (a64SGIWait) until the word at addr is at
// least n and a guest assert naming what if it never is. It clobbers
// X12-X15.
func (s *sgiGuest) wait(dst a64.Reg, addr uint64, n a64.Operand, what string) {
	s.waitFor(dst, addr, n, what, a64SGIWait)
}

func (s *sgiGuest) waitFor(dst a64.Reg, addr uint64, n a64.Operand, what string, d time.Duration) {
	a64guest.WaitWord(s.p, dst, addr, n, d)
	s.p.Cmp(dst, n)
	s.p.Assert(a64.HS, "timed out: "+what, dst)
}

// finish emits the end every vCPU runs: each of senders says it is done,
// every vCPU waits until the done word reaches doneAt (the senders, or
// the turns of the turn protocol), keeps a quiet window in which a
// duplicate SGI would arrive, and ends.
func (s *sgiGuest) finish(doneAt int, senders ...int) {
	s.each(func(i int) {
		for _, snd := range senders {
			if i == snd {
				a64guest.AtomicAdd(s.p, s.shared+sgiDone, 1)
			}
		}
	})
	// Twice a sender's wait: a sender whose SGI is lost reports that
	// (the first failure RunAll returns) before the others give up.
	s.waitFor(a64.X2, s.shared+sgiDone, a64.Imm(int64(doneAt)), "the senders' end", 2*a64SGIWait)
	a64guest.SpinFor(s.p, a64IRQQuiet)
	s.p.Done()
}

// checkSGILogs compares every vCPU's IRQ log with want (the INTIDs in
// the order taken), all at once so a failure shows the whole picture, and
// finds no spurious acknowledge.
func checkSGILogs(s *sgiGuest, want [][]uint32) {
	GinkgoHelper()
	Expect(want).To(HaveLen(s.n))
	got := make([][]uint32, s.n)
	counts, spurious := make([]uint64, s.n), make([]uint64, s.n)
	for i := range s.n {
		var err error
		got[i], counts[i], spurious[i], err = s.gic.IRQs(i)
		Expect(err).NotTo(HaveOccurred())
	}
	Expect(got).To(Equal(want), "the INTIDs each vCPU acknowledged, in order (counts %v)", counts)
	Expect(spurious).To(Equal(make([]uint64, s.n)), "each vCPU's spurious acknowledges")
}
