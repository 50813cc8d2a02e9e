package emu

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// cpuidProgram runs cpuid(leaf, sub) and reports on portDone.
func cpuidProgram(t *testing.T, leaf, sub uint32) []byte {
	return assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EAX, asm.Imm(int64(leaf)))
		a.Mov(asm.ECX, asm.Imm(int64(sub)))
		a.Cpuid()
		done(a)
	})
}

func TestCPUIDTable(t *testing.T) {
	pmu := hv.PMULeaf{Version: 2, GPCounters: 4, GPWidth: 48, FixedCounters: 3, FixedWidth: 48, EventsLen: 7}
	cases := []struct {
		name       string
		edit       func(tb *hv.CPUID)
		leaf, sub  uint32
		a, b, c, d uint32
	}{
		{"vendor", nil, 0, 0, cpuidMaxBasic, cpuidVendorB, cpuidVendorC, cpuidVendorD},
		{"leaf 1 apic id", nil, 1, 0, cpuidSig, 1<<16 | 8<<8, cpuid1ECX, cpuid1EDX},
		{"pmu edited", func(tb *hv.CPUID) { tb.SetPMU(pmu) }, 0xa, 0, pmu.Entry().EAX, 0, 0, pmu.Entry().EDX},
		{"absent leaf in range reads zeros", nil, 5, 0, 0, 0, 0, 0},
		{"above max basic reads highest basic", func(tb *hv.CPUID) { tb.SetPMU(pmu) }, 0x1234, 0, pmu.Entry().EAX, 0, 0, pmu.Entry().EDX},
		{"above max extended reads highest basic (0xA, the PMU)", nil, 0x80000009, 0, defaultPMU.Entry().EAX, defaultPMU.Entry().EBX, 0, defaultPMU.Entry().EDX},
		{"extended", nil, 0x80000008, 0, 48<<8 | physAddrBits, 0, 0, 0},
		{"feature hidden", func(tb *hv.CPUID) {
			e, _ := tb.Lookup(1, 0)
			e.EDX &^= hv.CPUID1EDXAPIC
			tb.Set(e)
		}, 1, 0, cpuidSig, 1<<16 | 8<<8, cpuid1ECX, cpuid1EDX &^ hv.CPUID1EDXAPIC},
		{"lower max basic", func(tb *hv.CPUID) {
			e, _ := tb.Lookup(0, 0)
			e.EAX = 1
			tb.Set(e)
		}, 7, 0, cpuidSig, 1<<16 | 8<<8, cpuid1ECX, cpuid1EDX},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGuest(t, newEmu(t), guestOpt{}, cpuidProgram(t, c.leaf, c.sub))
			if c.edit != nil {
				tb, err := g.vcpu.CPUID()
				if err != nil {
					t.Fatal(err)
				}
				c.edit(&tb)
				if err := g.vcpu.SetCPUID(tb); err != nil {
					t.Fatal(err)
				}
			}
			r := g.runDone(t)
			if uint32(r.RAX) != c.a || uint32(r.RBX) != c.b || uint32(r.RCX) != c.c || uint32(r.RDX) != c.d {
				t.Fatalf("cpuid(%#x,%d) = %#x %#x %#x %#x, want %#x %#x %#x %#x", c.leaf, c.sub,
					r.RAX, r.RBX, r.RCX, r.RDX, c.a, c.b, c.c, c.d)
			}
		})
	}
	t.Run("frozen after run", func(t *testing.T) {
		g := newTestGuest(t, newEmu(t), guestOpt{}, cpuidProgram(t, 0, 0))
		tb, _ := g.vcpu.CPUID()
		g.runDone(t)
		if err := g.vcpu.SetCPUID(tb); err != nil {
			t.Fatalf("same table after run: %v", err)
		}
		tb.SetPMU(pmu)
		if err := g.vcpu.SetCPUID(tb); !errors.Is(err, unix.EBUSY) {
			t.Fatalf("changed table after run = %v, want EBUSY", err)
		}
		if err := g.vcpu.SetCPUID(make(hv.CPUID, cpuidMaxEntries+1)); !errors.Is(err, unix.E2BIG) {
			t.Fatalf("oversized table = %v, want E2BIG", err)
		}
	})
	t.Run("returned table is a copy", func(t *testing.T) {
		v, _ := newTestGuest(t, newEmu(t), guestOpt{}, nil).vcpu.(*VCPU)
		tb, _ := v.CPUID()
		tb[0].EAX = 99
		if again, _ := v.CPUID(); again[0].EAX == 99 {
			t.Fatal("editing the returned table changed the vCPU's")
		}
	})
}

// debugCode: nop; int3; nop; out portDone. Offsets of each instruction.
const (
	atNop1   = codeGPA
	atInt3   = codeGPA + 1
	atNop2   = codeGPA + 2
	atDone   = codeGPA + 3
	dr6Step  = 0xffff4ff0
	dr6Quiet = 0xffff0ff0
)

func TestDebugRouting(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Nop()
		a.Int3()
		a.Nop()
		done(a)
	})
	type want struct {
		debug   *hv.DebugExit // a host exit first
		vec     int           // else: guest vector through the IDT (-1: none, the program ends)
		frameIP uint64
	}
	cases := []struct {
		name  string
		dbg   hv.GuestDebug
		regs  func(r *hv.Regs)
		dregs *hv.DebugRegs
		want  want
	}{
		{"int3 with sw-bp is the host's", hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseSWBP}, nil, nil,
			want{debug: &hv.DebugExit{Exception: 3, PC: atInt3, DR6: dr6Quiet, DR7: dr7Fixed}}},
		{"int3 without sw-bp is the guest's", hv.GuestDebug{Flags: hv.DebugEnable}, nil, nil,
			want{vec: 3, frameIP: atNop2}},
		{"sw-bp ignored without enable", hv.GuestDebug{Flags: hv.DebugUseSWBP}, nil, nil,
			want{vec: 3, frameIP: atNop2}},
		{"host single-step", hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}, nil, nil,
			want{debug: &hv.DebugExit{Exception: 1, PC: atInt3, DR6: dr6Step, DR7: dr7Fixed}}},
		{"host execute breakpoint", hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP,
			DebugReg: [8]uint64{0, atNop2, 0, 0, 0, 0, 0, 1 << 2}}, func(r *hv.Regs) { r.RIP = atNop2 }, nil,
			want{debug: &hv.DebugExit{Exception: 1, PC: atNop2, DR6: dr6Quiet | 2, DR7: 1 << 2}}},
		{"guest execute breakpoint", hv.GuestDebug{}, func(r *hv.Regs) { r.RIP = atNop2 },
			&hv.DebugRegs{DB: [4]uint64{atNop2}, DR7: 1},
			want{vec: 1, frameIP: atNop2}},
		{"host hw-bp replaces the guest's", hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP},
			func(r *hv.Regs) { r.RIP = atNop2 }, &hv.DebugRegs{DB: [4]uint64{atNop2}, DR7: 1},
			want{vec: -1}},
		{"guest TF is the guest's", hv.GuestDebug{Flags: hv.DebugEnable}, func(r *hv.Regs) {
			r.RIP = atNop2
			r.RFLAGS |= hv.FlagTF
		}, nil, want{vec: 1, frameIP: atDone}},
		{"inject #DB", hv.GuestDebug{Flags: hv.DebugInjectDB}, nil, nil, want{vec: 1, frameIP: atNop1}},
		{"inject #BP", hv.GuestDebug{Flags: hv.DebugInjectBP}, nil, nil, want{vec: 3, frameIP: atNop1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGuest(t, newEmu(t), guestOpt{}, code)
			if c.regs != nil {
				r, _ := g.vcpu.Regs()
				c.regs(&r)
				if err := g.vcpu.SetRegs(&r); err != nil {
					t.Fatal(err)
				}
			}
			if c.dregs != nil {
				if err := g.vcpu.SetDebugRegs(c.dregs); err != nil {
					t.Fatal(err)
				}
			}
			if err := g.vcpu.SetGuestDebug(&c.dbg); err != nil {
				t.Fatal(err)
			}
			if c.want.debug != nil {
				e := g.run(t)
				d, ok := e.(*hv.DebugExit)
				if !ok || *d != *c.want.debug {
					t.Fatalf("exit %v, want %v", e, c.want.debug)
				}
				if r, _ := g.vcpu.Regs(); r.RIP != d.PC {
					t.Fatalf("rip %#x after the debug exit, want %#x", r.RIP, d.PC)
				}
				return
			}
			if c.want.vec < 0 {
				g.runDone(t)
				return
			}
			f := g.runException(t)
			if int(f.vec) != c.want.vec || f.rip != c.want.frameIP {
				t.Fatalf("guest got vector %d at %#x, want %d at %#x", f.vec, f.rip, c.want.vec, c.want.frameIP)
			}
		})
	}
	t.Run("bad flags", func(t *testing.T) {
		g := newTestGuest(t, newEmu(t), guestOpt{}, code)
		if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugEnable | 1<<5}); !errors.Is(err, unix.EINVAL) {
			t.Fatalf("unknown flag = %v, want EINVAL", err)
		}
		if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugInjectBP}); err != nil {
			t.Fatal(err)
		}
		if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugInjectDB}); !errors.Is(err, unix.EBUSY) {
			t.Fatalf("second injection = %v, want EBUSY", err)
		}
	})
}

// TestBlockIRQ: host single-step with an interrupt pending lands in the
// handler unless DebugBlockIRQ holds interrupts back.
func TestBlockIRQ(t *testing.T) {
	for _, block := range []bool{false, true} {
		t.Run(map[bool]string{false: "steps into handler", true: "blockirq"}[block], func(t *testing.T) {
			var resume uint64 // after the first done: where the guest goes on
			code := assemble(t, func(a *asm.Assembler) {
				a.Mov(asm.EDI, asm.Imm(apicDefault))
				a.Mov(asm.D(asm.RDI, 0xf0), asm.Imm(0x1ff))
				a.Sti()
				a.Nop()
				done(a)
				resume = a.PC()
				a.Nop()
				a.Nop()
				done(a)
			})
			g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{IRQChip: true}}, code)
			put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87) // the APIC page
			g.runDone(t)
			if err := g.vm.Interrupt(0, 0x50); err != nil {
				t.Fatal(err)
			}
			f := hv.DebugEnable | hv.DebugSingleStep
			if block {
				f |= hv.DebugBlockIRQ
			}
			if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: f}); err != nil {
				t.Fatal(err)
			}
			// RIP is at done's OUT (OutRIPAtInsn): the first step
			// completes it, before any interrupt, as on VMX KVM.
			if d, ok := g.run(t).(*hv.DebugExit); !ok || d.PC != resume {
				t.Fatalf("exit %v, want the step that completes the OUT, at %#x", d, resume)
			}
			e := g.run(t)
			d, ok := e.(*hv.DebugExit)
			if !ok {
				t.Fatalf("exit %v, want a step", e)
			}
			handler := uint64(stubGPA + 16*0x50)
			if block && d.PC != resume+1 {
				t.Fatalf("step with blockirq landed at %#x, want %#x", d.PC, resume+1)
			}
			if !block && d.PC != handler {
				t.Fatalf("step without blockirq landed at %#x, want the handler %#x", d.PC, handler)
			}
		})
	}
}

// TestInterruptShadows: after STI and after MOV SS one more instruction
// runs before a pending interrupt is taken.
func TestInterruptShadows(t *testing.T) {
	cases := []struct {
		name   string
		shadow func(a *asm.Assembler)
	}{
		{"sti", func(a *asm.Assembler) { a.Sti() }},
		// mov ss, eax (8e d0) inside the STI shadow: its own shadow
		// then covers the next instruction too.
		{"mov ss", func(a *asm.Assembler) { a.Sti(); a.Byte(0x8e, 0xd0) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var shadowEnd uint64
			code := assemble(t, func(a *asm.Assembler) {
				a.Mov(asm.EDI, asm.Imm(apicDefault))
				a.Mov(asm.D(asm.RDI, 0xf0), asm.Imm(0x1ff))
				a.Byte(0x8c, 0xd0) // mov eax, ss
				done(a)
				c.shadow(a)
				shadowEnd = a.PC()
				a.Nop()
				a.Nop()
				done(a)
			})
			g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{IRQChip: true}}, code)
			put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87)
			g.runDone(t)
			if err := g.vm.Interrupt(0, 0x60); err != nil {
				t.Fatal(err)
			}
			f := g.runException(t)
			if f.vec != 0x60 || f.rip != shadowEnd+1 {
				t.Fatalf("vector %#x taken at %#x, want 0x60 after the instruction at %#x", f.vec, f.rip, shadowEnd)
			}
		})
	}
}

// TestAPICPageWithoutIRQChip: like KVM without KVM_CREATE_IRQCHIP, the
// APIC page is plain MMIO that exits to the host.
func TestAPICPageWithoutIRQChip(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EDI, asm.Imm(apicDefault))
		a.Mov(asm.D(asm.RDI, 0xf0), asm.Imm(0x1ff))
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87)
	e := g.run(t)
	m, ok := e.(*hv.MMIOExit)
	if !ok || !m.Write || m.GPA != apicDefault+0xf0 || m.Value() != 0x1ff {
		t.Fatalf("exit %v, want an MMIO write to the APIC's SVR", e)
	}
}

func TestIOAPICRegisters(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EDI, asm.Imm(hv.IOAPICBase))
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRegVer))
		a.Mov(asm.EAX, asm.D(asm.RDI, 0x10))
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRegRedir+2*3))
		a.Mov(asm.D(asm.RDI, 0x10), asm.Imm(0xffffffff)) // only writable bits stick
		a.Mov(asm.EBX, asm.D(asm.RDI, 0x10))
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRegRedir+2*3+1))
		a.Mov(asm.D(asm.RDI, 0x10), asm.Imm(0x05ffffff))
		a.Mov(asm.ECX, asm.D(asm.RDI, 0x10))
		a.Mov(asm.D(asm.RDI, 0), asm.Imm(ioapicRegRedir+2*4))
		a.Mov(asm.EDX, asm.D(asm.RDI, 0x10))
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{IRQChip: true}}, code)
	put64(g.mem.Bytes(), pdptGPA+8*3, 0xc0000000|0x87)
	r := g.runDone(t)
	if r.RAX != ioapicVersion || r.RBX != redirWritableLo || r.RCX != 0x05000000 || r.RDX != redirMasked {
		t.Fatalf("version %#x redir3 %#x:%#x redir4 %#x", r.RAX, r.RCX, r.RBX, r.RDX)
	}
}

func TestInternalErrorDetail(t *testing.T) {
	cases := []struct {
		name  string
		build func(a *asm.Assembler)
		setup func(g *testGuest)
		want  []string
	}{
		{"fetch from unbacked", func(a *asm.Assembler) {
			a.Mov(asm.EAX, asm.Imm(mmioGPA))
			a.JmpInd(asm.RAX)
		}, nil, []string{"instruction fetch", "0x20000000"}},
		{"exception delivery through MMIO", func(a *asm.Assembler) {
			a.Int3()
		}, func(g *testGuest) {
			s, _ := g.vcpu.Sregs()
			s.IDT.Base = mmioGPA
			g.vcpu.SetSregs(&s)
		}, []string{"delivering vector 3", "int3"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGuest(t, newEmu(t), guestOpt{}, assemble(t, c.build))
			if c.setup != nil {
				c.setup(g)
			}
			e := g.run(t)
			ie, ok := e.(*hv.InternalErrorExit)
			if !ok {
				t.Fatalf("exit %v, want an internal error", e)
			}
			for _, w := range c.want {
				if !strings.Contains(ie.Detail, w) {
					t.Errorf("detail %q lacks %q", ie.Detail, w)
				}
			}
		})
	}
}

// TestHostWriteInvalidatesCode: code patched through GuestMemory while the
// guest runs it is seen at once (the write invalidates decoded code).
func TestHostWriteInvalidatesCode(t *testing.T) {
	const fn = codeGPA + 0x800
	code := assemble(t, func(a *asm.Assembler) {
		l := a.Here()
		a.Mov(asm.EAX, asm.Imm(fn))
		a.CallInd(asm.RAX)
		a.Cmp(asm.EAX, asm.Imm(2))
		a.Jcc(asm.CondNZ, l)
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	b := g.mem.Bytes()
	copy(b[fn:], []byte{0xb8, 1, 0, 0, 0, 0xc3}) // mov eax, 1; ret
	go func() {
		time.Sleep(20 * time.Millisecond)
		g.vm.WriteGPA(fn+1, []byte{2}) // mov eax, 2
	}()
	g.runDone(t)
	if st, _ := g.vm.Stats(); func() uint64 { v, _ := st.Get("code_invalidations"); return v }() == 0 {
		t.Fatal("no code invalidation counted")
	}
}

func TestWatchpoints(t *testing.T) {
	const watched = dataGPA + 0x10
	var afterRead, afterWrite, afterLocked uint64
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RSI, asm.Imm(dataGPA))
		a.Mov(asm.EAX, asm.D(asm.RSI, 0x10)) // read
		afterRead = a.PC()
		a.Mov(asm.D(asm.RSI, 0x12), asm.EAX) // write, overlapping the 4 watched bytes
		afterWrite = a.PC()
		a.Lock().Add(asm.D(asm.RSI, 0x10), asm.Imm(1))
		afterLocked = a.PC()
		done(a)
	})
	// dr7 enables DR0 (L0) with rw and a 4-byte length.
	dr7 := func(rw uint64) uint64 { return 1 | rw<<16 | 3<<18 }
	cases := []struct {
		name   string
		host   bool
		rw     uint64
		stopAt []uint64 // RIPs of the hits, in order
	}{
		{"host read/write", true, 3, []uint64{afterRead, afterWrite, afterLocked}},
		{"host write only", true, 1, []uint64{afterWrite, afterLocked}},
		{"guest read/write", false, 3, []uint64{afterRead, afterWrite, afterLocked}},
		{"guest write only", false, 1, []uint64{afterWrite, afterLocked}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGuest(t, newEmu(t), guestOpt{}, code)
			if c.host {
				d := hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP, DebugReg: [8]uint64{watched, 0, 0, 0, 0, 0, 0, dr7(c.rw)}}
				if err := g.vcpu.SetGuestDebug(&d); err != nil {
					t.Fatal(err)
				}
				for _, at := range c.stopAt {
					e := g.run(t)
					d, ok := e.(*hv.DebugExit)
					want := hv.DebugExit{Exception: 1, PC: at, DR6: dr6Quiet | 1, DR7: dr7(c.rw)}
					if !ok || *d != want {
						t.Fatalf("exit %v, want %v", e, want)
					}
				}
				g.runDone(t)
				return
			}
			if err := g.vcpu.SetDebugRegs(&hv.DebugRegs{DB: [4]uint64{watched}, DR7: dr7(c.rw)}); err != nil {
				t.Fatal(err)
			}
			f := g.runException(t)
			if f.vec != 1 || f.rip != c.stopAt[0] {
				t.Fatalf("guest got vector %d at %#x, want #DB after the access at %#x", f.vec, f.rip, c.stopAt[0])
			}
			if d, _ := g.vcpu.DebugRegs(); d.DR6&0xf != 1 {
				t.Fatalf("guest DR6 %#x, want B0", d.DR6)
			}
		})
	}
}
