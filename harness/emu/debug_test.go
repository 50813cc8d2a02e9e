package emu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// dbRec is a #DB the guest's handler saw: saved RIP and DR6.
type dbRec struct{ rip, dr6 uint64 }

// debugGuest is a standard CPL0 guest with a guest.DebugLog #DB handler.
type debugGuest struct {
	*guest.Guest
	log uint64
	buf uint64
}

func newDebugGuest(t *testing.T) *debugGuest {
	t.Helper()
	g, err := guest.New(New(Options{}), guest.Config{Mode: guest.CPL0})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	log, err := g.Alloc(hv.PageSize, hv.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	buf, err := g.Alloc(hv.PageSize, hv.PageSize)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Handle(guest.DebugLog(log)); err != nil {
		t.Fatal(err)
	}
	return &debugGuest{Guest: g, log: log, buf: buf}
}

// records reads the handler's log.
func (g *debugGuest) records(t *testing.T) []dbRec {
	t.Helper()
	recs, err := g.DebugRecords(0, g.log)
	if err != nil {
		t.Fatal(err)
	}
	var out []dbRec
	for _, r := range recs {
		out = append(out, dbRec{r.RIP, r.DR6})
	}
	return out
}

func debugCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestGuestDebugEvents: the guest's own debug events, each checked for
// the #DBs its handler saw (saved RIP and DR6). Each case is a defect
// the debug suite found: an IRET that pops RF lost it to the end of the
// IRET itself (an execute breakpoint re-hit forever), REP string data
// breakpoints were reported once after the whole instruction, and DR7.GD
// was ignored.
func TestGuestDebugEvents(t *testing.T) {
	cases := []struct {
		name string
		// build emits the program and returns the labels of the
		// expected records' RIPs with their DR6.
		build func(g *debugGuest, p *guest.Program) (rips []*asm.Label, dr6 []uint64)
	}{
		{"execute breakpoint, RF from the handler's IRET runs it once", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			target := p.NewLabel()
			p.MovLabel(asm.RAX, target)
			p.MovToDR(asm.DR2, asm.RAX)
			p.Mov(asm.ESI, asm.Imm(1<<4|dr7Fixed))
			p.MovToDR(asm.DR7, asm.RSI)
			p.Bind(target)
			p.Nop()
			p.Nop()
			return []*asm.Label{target}, []uint64{dr6Fixed | 1<<2}
		}},
		{"rep stosb traps after each iteration that hits", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			p.MovAbs(asm.RAX, g.buf+2)
			p.MovToDR(asm.DR0, asm.RAX)
			p.Mov(asm.ESI, asm.Imm(1|1<<16|1<<18|dr7Fixed)) // L0, write, 2 bytes
			p.MovToDR(asm.DR7, asm.RSI)
			p.MovAbs(asm.RDI, g.buf)
			p.Mov(asm.ECX, asm.Imm(8))
			stos := p.Here()
			p.Rep().Stosb()
			p.AssertEq(asm.RCX, asm.Imm(0), "rcx")
			return []*asm.Label{stos, stos}, []uint64{dr6Fixed | 1, dr6Fixed | 1}
		}},
		{"general detect faults before the access and clears GD", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			p.Mov(asm.ESI, asm.Imm(dr7GD|dr7Fixed))
			p.MovToDR(asm.DR7, asm.RSI)
			at := p.Here()
			p.MovFromDR(asm.RAX, asm.DR7)
			p.AssertEq(asm.RAX, asm.Imm(dr7Fixed), "DR7 read after the #DB")
			return []*asm.Label{at}, []uint64{dr6Fixed | dr6BD}
		}},
		{"TF and a data breakpoint on one instruction are one #DB", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			p.MovAbs(asm.RAX, g.buf)
			p.MovToDR(asm.DR1, asm.RAX)
			p.Mov(asm.ESI, asm.Imm(1<<2|1<<20|3<<22|dr7Fixed)) // L1, write, 4 bytes
			p.MovToDR(asm.DR7, asm.RSI)
			p.MovAbs(asm.RDI, g.buf)
			p.Pushfq()
			p.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
			p.Popfq()
			p.Mov(asm.D(asm.RDI, 0), asm.Imm(1))
			after := p.Here()
			steps := stopStepping(p)
			return append([]*asm.Label{after}, steps...), []uint64{dr6Fixed | dr6BS | 1<<1, dr6Fixed | dr6BS, dr6Fixed | dr6BS, dr6Fixed | dr6BS}
		}},
		{"DR6 shows a met execute condition that is not enabled", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			target := p.NewLabel()
			p.MovLabel(asm.RAX, target)
			p.MovToDR(asm.DR0, asm.RAX)
			p.MovToDR(asm.DR3, asm.RAX)
			p.Mov(asm.ESI, asm.Imm(1|dr7Fixed)) // L0 only
			p.MovToDR(asm.DR7, asm.RSI)
			p.Bind(target)
			p.Nop()
			return []*asm.Label{target}, []uint64{dr6Fixed | 1 | 1<<3}
		}},
		{"DR6 shows a met data condition that is not enabled", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			p.MovAbs(asm.RAX, g.buf)
			p.MovToDR(asm.DR0, asm.RAX)
			p.MovAbs(asm.RAX, g.buf+4)
			p.MovToDR(asm.DR2, asm.RAX)
			// L0 write 8 bytes; DR2 write 4 bytes, not enabled.
			p.Mov(asm.ESI, asm.Imm(1|(1|2<<2)<<16|(1|3<<2)<<24|dr7Fixed))
			p.MovToDR(asm.DR7, asm.RSI)
			p.MovAbs(asm.RDI, g.buf+0x100)
			p.Mov(asm.D(asm.RDI, 0), asm.Imm(1)) // neither
			p.MovAbs(asm.RDI, g.buf)
			p.Mov(asm.Q(asm.RDI, 0), asm.Imm(1))
			after := p.Here()
			return []*asm.Label{after}, []uint64{dr6Fixed | 1 | 1<<2}
		}},
		{"a MOV SS delays the single-step trap by one instruction", func(g *debugGuest, p *guest.Program) ([]*asm.Label, []uint64) {
			p.Pushfq()
			p.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
			p.Popfq()
			p.Mov(asm.EAX, asm.Imm(int64(guest.SelKernelData)))
			next := p.Here()
			p.Byte(0x8e, 0xd0) // mov ss, eax
			p.Nop()
			after := p.Here()
			steps := stopStepping(p)
			bs := uint64(dr6Fixed | dr6BS)
			return append([]*asm.Label{next, after}, steps...), []uint64{bs, bs, bs, bs, bs}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newDebugGuest(t)
			p := g.Program()
			rips, dr6 := c.build(g, p)
			p.Xor(asm.ESI, asm.ESI)
			p.MovToDR(asm.DR7, asm.RSI)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			if err := g.RunUntilDone(debugCtx(t), 0, nil); err != nil {
				t.Fatalf("%v; #DBs %x", err, g.records(t))
			}
			got := g.records(t)
			if len(got) != len(rips) {
				t.Fatalf("#DBs %x, want %d", got, len(rips))
			}
			for i, l := range rips {
				a, _ := p.Addr(l)
				if got[i] != (dbRec{a, dr6[i]}) {
					t.Errorf("#DB %d: rip %#x dr6 %#x, want rip %#x (%s) dr6 %#x", i+1, got[i].rip, got[i].dr6, a, g.Source(a), dr6[i])
				}
			}
		})
	}
}

// stopStepping clears TF with pushfq; and; popfq and returns the RIPs of
// the three traps that follow: after each of the three instructions.
func stopStepping(p *guest.Program) []*asm.Label {
	p.Pushfq()
	l1 := p.Here()
	p.And(asm.Q(asm.RSP, 0), asm.Imm(^int64(hv.FlagTF)))
	l2 := p.Here()
	p.Popfq()
	return []*asm.Label{l1, l2, p.Here()}
}

// TestHostDebugEvents: host-owned events the suite found missing: DR7.GD
// in the host's DR7, and a host single-step on an instruction that hits
// the guest's own watchpoint (one exit, DR6 BS and B0; the guest sees
// nothing).
func TestHostDebugEvents(t *testing.T) {
	t.Run("general detect", func(t *testing.T) {
		g := newDebugGuest(t)
		p := g.Program()
		at := p.Here()
		p.MovFromDR(asm.RAX, asm.DR3)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		dbg := hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP}
		dbg.DebugReg[7] = dr7GD | dr7Fixed
		if err := g.VCPUs[0].SetGuestDebug(&dbg); err != nil {
			t.Fatal(err)
		}
		ev, err := g.Run(debugCtx(t), 0)
		a, _ := p.Addr(at)
		want := hv.DebugExit{Exception: 1, PC: a, DR6: dr6Fixed | dr6BD, DR7: dr7GD | dr7Fixed}
		if d, ok := ev.Exit.(*hv.DebugExit); err != nil || !ok || *d != want {
			t.Fatalf("exit %v, %v; want %v", ev.Exit, err, &want)
		}
	})
	t.Run("host step meets a guest watchpoint", func(t *testing.T) {
		g := newDebugGuest(t)
		p := g.Program()
		p.MovAbs(asm.RAX, g.buf)
		p.MovToDR(asm.DR0, asm.RAX)
		p.Mov(asm.ESI, asm.Imm(1|1<<16|3<<18|dr7Fixed))
		p.MovToDR(asm.DR7, asm.RSI)
		p.MovAbs(asm.RDI, g.buf)
		p.Sync(1)
		resume := p.Here()
		p.Mov(asm.D(asm.RDI, 0), asm.Imm(1))
		after := p.Here()
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		if _, err := g.Run(debugCtx(t), 0); err != nil {
			t.Fatal(err)
		}
		if err := g.VCPUs[0].SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}); err != nil {
			t.Fatal(err)
		}
		// RIP is at the SYNC's OUT (the default OutRIPAtInsn): the next
		// run completes it as a stepped instruction, as VMX KVM does.
		ev, err := g.Run(debugCtx(t), 0)
		r, _ := p.Addr(resume)
		if d, ok := ev.Exit.(*hv.DebugExit); err != nil || !ok || d.PC != r || d.DR6 != dr6Fixed|dr6BS {
			t.Fatalf("exit %v, %v; want the step that completes the OUT, at %#x", ev.Exit, err, r)
		}
		ev, err = g.Run(debugCtx(t), 0)
		a, _ := p.Addr(after)
		want := hv.DebugExit{Exception: 1, PC: a, DR6: dr6Fixed | dr6BS | 1, DR7: 1 | 1<<16 | 3<<18 | dr7Fixed}
		if d, ok := ev.Exit.(*hv.DebugExit); err != nil || !ok || *d != want {
			t.Fatalf("exit %v, %v; want %v", ev.Exit, err, &want)
		}
		if err := g.VCPUs[0].SetGuestDebug(&hv.GuestDebug{}); err != nil {
			t.Fatal(err)
		}
		if err := g.RunUntilDone(debugCtx(t), 0, nil); err != nil {
			t.Fatal(err)
		}
		if r := g.records(t); len(r) != 0 {
			t.Fatalf("guest #DBs %x, want none", r)
		}
	})
}

// TestIOBreakpoint: with CR4.DE an RW=10 breakpoint watches a port; the
// OUT exits to the host first and the #DB follows on re-entry, RIP after
// the OUT. Without CR4.DE the same DR7 matches nothing.
func TestIOBreakpoint(t *testing.T) {
	for _, de := range []bool{true, false} {
		t.Run(map[bool]string{true: "CR4.DE", false: "no CR4.DE"}[de], func(t *testing.T) {
			g := newDebugGuest(t)
			p := g.Program()
			if de {
				p.MovFromCR(asm.RAX, asm.CR4)
				p.Or(asm.RAX, asm.Imm(cr4DE))
				p.MovToCR(asm.CR4, asm.RAX)
			}
			p.Mov(asm.EAX, asm.Imm(0x82))
			p.MovToDR(asm.DR1, asm.RAX)
			p.Mov(asm.ESI, asm.Imm(1<<2|(2|1<<2)<<20|dr7Fixed)) // L1, I/O, 2 bytes: ports 0x82-0x83
			p.MovToDR(asm.DR7, asm.RSI)
			p.Out(asm.Imm(0x84), asm.AL) // outside
			p.Out(asm.Imm(0x83), asm.AL)
			after := p.Here()
			p.Xor(asm.ESI, asm.ESI)
			p.MovToDR(asm.DR7, asm.RSI)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			for _, port := range []uint16{0x84, 0x83} {
				ev, err := g.Run(debugCtx(t), 0)
				if io, ok := ev.Exit.(*hv.IOExit); err != nil || !ok || io.Port != port {
					t.Fatalf("exit %v, %v; want the OUT to port %#x", ev.Exit, err, port)
				}
			}
			if err := g.RunUntilDone(debugCtx(t), 0, nil); err != nil {
				t.Fatal(err)
			}
			got := g.records(t)
			a, _ := p.Addr(after)
			switch {
			case de && (len(got) != 1 || got[0] != dbRec{a, dr6Fixed | 1<<1}):
				t.Fatalf("#DBs %x, want one at %#x with B1", got, a)
			case !de && len(got) != 0:
				t.Fatalf("#DBs %x without CR4.DE, want none", got)
			}
		})
	}
}

// FuzzDebugState arms random guest debug registers and host debug
// settings over a program that touches memory every way (plain, string,
// locked, stack, port, debug-register moves) and steps with TF. Bad
// values must be refused with EINVAL, exactly when the contract says, and
// whatever is accepted must run without a host panic or an emulator bug.
func FuzzDebugState(f *testing.F) {
	f.Add(uint64(dataGPA), uint64(codeGPA+5), uint64(0), uint64(dataGPA+4), uint64(0xffff0ff0), uint64(0xd0401), uint32(0), uint64(0), uint64(0))
	f.Add(uint64(dataGPA), uint64(0), uint64(0), uint64(0), uint64(0xffff0ff0), uint64(1<<13), uint32(hv.DebugEnable|hv.DebugUseHWBP), uint64(codeGPA), uint64(0x402))
	f.Add(uint64(0x80), uint64(0), uint64(0), uint64(0), uint64(0), uint64(0xffffffffffffffff), uint32(0xffffffff), uint64(dataGPA), uint64(0xffffffff))
	f.Add(uint64(0), uint64(0), uint64(0), uint64(0), uint64(1<<40), uint64(0x20001), uint32(hv.DebugEnable|hv.DebugSingleStep|hv.DebugBlockIRQ), uint64(0), uint64(0))
	code := assemble(f, func(a *asm.Assembler) {
		a.Mov(asm.RDI, asm.Imm(dataGPA))
		a.Mov(asm.Q(asm.RDI, 0), asm.RDI)
		a.Mov(asm.RAX, asm.Q(asm.RDI, 3))
		a.Mov(asm.ECX, asm.Imm(16))
		a.Rep().Stosb()
		a.Lock().Add(asm.D(asm.RDI, 0), asm.Imm(1))
		a.Push(asm.RAX)
		a.Pop(asm.RAX)
		a.Out(asm.Imm(0x80), asm.AL)
		a.MovFromDR(asm.RAX, asm.DR7)
		a.Pushfq()
		a.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
		a.Popfq()
		a.Nop()
		a.Nop()
		done(a)
	})
	f.Fuzz(func(t *testing.T, d0, d1, d2, d3, dr6, dr7 uint64, flags uint32, hostDR, hostDR7 uint64) {
		g := newTestGuest(t, New(Options{}), guestOpt{memSize: 4 << 20}, code)
		err := g.vcpu.SetDebugRegs(&hv.DebugRegs{DB: [4]uint64{d0, d1, d2, d3}, DR6: dr6, DR7: dr7})
		if bad := dr6>>32 != 0 || dr7>>32 != 0; bad != (err != nil) || (bad && !errors.Is(err, unix.EINVAL)) {
			t.Fatalf("SetDebugRegs dr6 %#x dr7 %#x: %v", dr6, dr7, err)
		}
		gd := hv.GuestDebug{Flags: hv.DebugFlags(flags)}
		gd.DebugReg = [8]uint64{hostDR, hostDR + 8, hostDR ^ 1, d0, 0, 0, 0, hostDR7}
		err = g.vcpu.SetGuestDebug(&gd)
		if bad := gd.Flags&^hv.DebugFlagsKnown != 0; bad != (err != nil) || (bad && !errors.Is(err, unix.EINVAL)) {
			t.Fatalf("SetGuestDebug %v: %v", gd.Flags, err)
		}
		fuzzRun(t, g, 50*time.Millisecond, 200, func(e hv.Exit) bool {
			io, ok := e.(*hv.IOExit)
			return ok && io.Port == portDone
		})
	})
}
