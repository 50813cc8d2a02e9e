package emu

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/hv/hvtest"
)

// mmioGPA is not backed by the test guest's slot (8 MiB) but mapped by its
// page tables (1 GiB identity map).
const mmioGPA = 0x20000000

func TestMMIOExits(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RAX, asm.Imm(mmioGPA))
		a.Mov(asm.D(asm.RAX, 0), asm.Imm(0x1234))
		a.Mov(asm.RBX, asm.Q(asm.RAX, 8))
		a.Add(asm.ECX, asm.D(asm.RAX, 0x10))
		a.Hlt()
	})
	for _, user := range []bool{false, true} {
		g := newTestGuest(t, newEmu(t), guestOpt{user: user}, code)
		e := g.run(t)
		m, ok := e.(*hv.MMIOExit)
		if !ok || !m.Write || m.GPA != mmioGPA || m.Len != 4 || m.Value() != 0x1234 {
			t.Fatalf("exit %v, want a 4-byte MMIO write of 0x1234", e)
		}
		r, _ := g.vcpu.Regs()
		if r.RIP != codeGPA+7+6 {
			t.Fatalf("rip %#x on a write exit, want past the instruction", r.RIP)
		}
		e = g.run(t)
		m, ok = e.(*hv.MMIOExit)
		if !ok || m.Write || m.GPA != mmioGPA+8 || m.Len != 8 {
			t.Fatalf("exit %v, want an 8-byte MMIO read", e)
		}
		r, _ = g.vcpu.Regs()
		if r.RIP != codeGPA+13 {
			t.Fatalf("rip %#x on a read exit, want at the instruction", r.RIP)
		}
		m.SetValue(0xfeedfacecafebeef)
		e = g.run(t)
		m, ok = e.(*hv.MMIOExit)
		if !ok || m.Write || m.GPA != mmioGPA+0x10 || m.Len != 4 {
			t.Fatalf("exit %v, want a 4-byte MMIO read", e)
		}
		m.SetValue(5)
		if e := g.run(t); e.Kind() != hv.ExitHalt && !(user && e.Kind() == hv.ExitIO) {
			t.Fatalf("exit %v", e)
		}
		r, _ = g.vcpu.Regs()
		if r.RBX != 0xfeedfacecafebeef || r.RCX != 5 {
			t.Fatalf("rbx %#x rcx %#x: host MMIO values not seen", r.RBX, r.RCX)
		}
	}
}

func TestReadOnlySlotWriteExits(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RAX, asm.Imm(dataGPA))
		a.Mov(asm.RBX, asm.Q(asm.RAX, 0))
		a.Mov(asm.Q(asm.RAX, 0), asm.Imm(0x77))
		done(a)
	})
	h := newEmu(t)
	g := newTestGuest(t, h, guestOpt{}, code)
	rom, _ := hv.NewMemory(2<<20, hv.Anonymous)
	defer rom.Close()
	rom.Bytes()[0] = 0x42
	// Move the data region into its own read-only slot.
	g.vm.DeleteMemslot(0)
	if err := g.vm.SetMemslot(hv.Memslot{Slot: 0, GPA: 0, Size: dataGPA, Memory: g.mem}); err != nil {
		t.Fatal(err)
	}
	if err := g.vm.SetMemslot(hv.Memslot{Slot: 1, GPA: dataGPA, Size: 2 << 20, Memory: rom, Flags: hv.MemReadOnly}); err != nil {
		t.Fatal(err)
	}
	e := g.run(t)
	m, ok := e.(*hv.MMIOExit)
	if !ok || !m.Write || m.GPA != dataGPA || m.Value() != 0x77 {
		t.Fatalf("exit %v, want MMIO write to the read-only slot", e)
	}
	if rom.Bytes()[0] != 0x42 {
		t.Fatal("read-only memory changed")
	}
	r := g.runDone(t)
	if r.RBX != 0x42 {
		t.Fatalf("rbx %#x: read from ROM", r.RBX)
	}
}

// dev1 reports whether the device saw one read and one write.
func dev1(d *hvtest.Recorder) bool { r, w := d.Counts(); return r == 1 && w == 1 }

func TestPIO(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.AL, asm.Imm(0x42))
		a.Out(asm.Imm(0x10), asm.AL)
		a.In(asm.AL, asm.Imm(0x11))
		a.Mov(asm.BL, asm.AL)
		a.Mov(asm.DX, asm.Imm(0x3f8))
		a.Out(asm.DX, asm.AL) // handled by a device
		a.In(asm.AL, asm.DX)  // likewise
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{user: true}, code)
	dev := &hvtest.Recorder{ReadValue: 0x5a}
	if err := g.vm.Attach(dev, hv.Region{Space: hv.SpacePIO, Base: 0x3f8, Size: 8}); err != nil {
		t.Fatal(err)
	}
	io := g.runIO(t)
	if io.In || io.Port != 0x10 || io.Size != 1 || io.Value() != 0x42 {
		t.Fatalf("exit %v", io)
	}
	io = g.runIO(t)
	if !io.In || io.Port != 0x11 {
		t.Fatalf("exit %v", io)
	}
	io.SetValue(0x99)
	r := g.runDone(t)
	if r.RBX&0xff != 0x99 || r.RAX&0xff != 0x5a || !dev1(dev) {
		t.Fatalf("rbx %#x rax %#x device %+v", r.RBX, r.RAX, dev.Accesses())
	}
	st, _ := g.vcpu.Stats()
	if n, _ := st.Get("io_exits"); n != 5 {
		t.Errorf("io_exits = %d, want 5 (device accesses count too)", n)
	}
}

// TestIOPrivilege checks the architectural rules: CPL <= IOPL allows, else
// the TSS bitmap decides (bit set = #GP), and no bitmap means #GP.
func TestIOPrivilege(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Out(asm.Imm(0x40), asm.AL)
		done(a)
	})
	cases := []struct {
		name     string
		iopl     uint64
		noBitmap bool
		block    bool // set the port's bitmap bit
		wantGP   bool
	}{
		{"bitmap allows", 0, false, false, false},
		{"bitmap blocks", 0, false, true, true},
		{"no bitmap", 0, true, false, true},
		{"iopl3 overrides bitmap", 3, false, true, false},
		{"iopl3 without bitmap", 3, true, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := newTestGuest(t, newEmu(t), guestOpt{user: true, noBitmap: c.noBitmap}, code)
			if c.block {
				g.mem.Bytes()[tssGPA+0x68+0x40/8] |= 1
			}
			r, _ := g.vcpu.Regs()
			r.RFLAGS |= c.iopl << 12
			g.vcpu.SetRegs(&r)
			io := g.runIO(t)
			if gotGP := io.Port == portExc; gotGP != c.wantGP {
				t.Fatalf("exit %v, want #GP %v", io, c.wantGP)
			}
			if c.wantGP && io.Value() != vecGP {
				t.Fatalf("vector %d", io.Value())
			}
		})
	}
}

func TestTripleFaultShutdown(t *testing.T) {
	g := newTestGuest(t, newEmu(t), guestOpt{}, []byte{0x0f, 0x0b}) // ud2
	s, _ := g.vcpu.Sregs()
	s.IDT.Limit = 0 // every delivery faults: #UD -> #GP -> #DF -> shutdown
	g.vcpu.SetSregs(&s)
	if e := g.run(t); e.Kind() != hv.ExitShutdown {
		t.Fatalf("exit %v, want shutdown", e)
	}
}

func TestDoubleFault(t *testing.T) {
	// #PF whose delivery page-faults (stack unmapped) becomes #DF.
	code := assemble(t, func(a *asm.Assembler) {
		a.MovAbs(asm.RAX, 0x40000000) // beyond the 1 GiB map
		a.Mov(asm.RAX, asm.Q(asm.RAX, 0))
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	r, _ := g.vcpu.Regs()
	r.RSP = 0x40001000 // unmapped stack
	g.vcpu.SetRegs(&r)
	// The #DF is delivered on the same bad stack: a triple fault.
	if e := g.run(t); e.Kind() != hv.ExitShutdown {
		t.Fatalf("exit %v, want shutdown", e)
	}
	// With IST 1 pointing at a good stack, #DF is delivered.
	g = newTestGuest(t, newEmu(t), guestOpt{}, code)
	b := g.mem.Bytes()
	put64(b, tssGPA+0x24, 0x70000)
	b[idtGPA+16*8+4] = 1 // IST 1 for #DF
	g.vcpu.SetRegs(&r)
	f := g.runException(t)
	if f.vec != vecDF || f.code != 0 {
		t.Fatalf("frame %+v, want #DF(0)", f)
	}
}

func TestCancelSpinningGuest(t *testing.T) {
	g := newTestGuest(t, newEmu(t), guestOpt{}, []byte{0xeb, 0xfe}) // jmp .
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := g.vcpu.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("stopping took %v", d)
	}
	copy(g.mem.Bytes()[codeGPA+0x10:], []byte{0xf4})
	g.vcpu.SetRegs(&hv.Regs{RIP: codeGPA + 0x10, RFLAGS: hv.FlagsFixed})
	if e := g.run(t); e.Kind() != hv.ExitHalt {
		t.Fatalf("rerun: %v, want halt", e)
	}
	// A context that is already over stops before entering.
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if _, err := g.vcpu.Run(ctx2); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run with ended context = %v", err)
	}
}

func TestUserSpaceMSR(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.ECX, asm.Imm(0x4b564d99))
		a.Rdmsr()
		a.Mov(asm.RBX, asm.RAX)
		a.Wrmsr()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{cfg: hv.VMConfig{UserSpaceMSR: true}}, code)
	e := g.run(t)
	m, ok := e.(*hv.MSRExit)
	if !ok || m.Write || m.Index != 0x4b564d99 {
		t.Fatalf("exit %v", e)
	}
	m.Data = 0x1234
	e = g.run(t)
	if m, ok = e.(*hv.MSRExit); !ok || !m.Write || m.Data != 0x1234 {
		t.Fatalf("exit %v", e)
	}
	m.Error = true
	f := g.runException(t)
	if f.vec != vecGP || f.rip != codeGPA+10 {
		t.Fatalf("frame %+v, want #GP at the wrmsr", f)
	}
	// Without UserSpaceMSR the unknown MSR is a #GP.
	g = newTestGuest(t, newEmu(t), guestOpt{}, code)
	if f := g.runException(t); f.vec != vecGP || f.rip != codeGPA+5 {
		t.Fatalf("frame %+v", f)
	}
}

func TestHypercall(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EAX, asm.Imm(12))
		a.Mov(asm.EBX, asm.Imm(34))
		a.Vmcall()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{}, code)
	e := g.run(t)
	hc, ok := e.(*hv.HypercallExit)
	if !ok || hc.Nr != 12 || hc.Args[0] != 34 {
		t.Fatalf("exit %v", e)
	}
	hc.Ret = 99
	if r := g.runDone(t); r.RAX != 99 {
		t.Fatalf("rax %#x", r.RAX)
	}
	g = newTestGuest(t, newEmu(t), guestOpt{user: true}, code)
	if r := g.runDone(t); r.RAX != kvmEPERM {
		t.Fatalf("vmcall at CPL3: rax %#x, want -KVM_EPERM", r.RAX)
	}
}

// TestInvalidStateFailsEntry: the emu runs long mode only, so a vCPU in
// its reset state fails entry, unless no memory backs its first
// instruction: then, as on KVM, the fetch itself is the internal error.
func TestInvalidStateFailsEntry(t *testing.T) {
	for _, c := range []struct {
		name   string
		backed bool
		want   hv.ExitKind
	}{
		{"reset vector backed", true, hv.ExitFailEntry},
		{"no memory at all", false, hv.ExitInternalError},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := New(Options{})
			vm, _ := h.NewVM(hv.VMConfig{})
			defer vm.Close()
			if c.backed {
				mem, err := hv.NewMemory(0x10000, hv.Anonymous)
				if err != nil {
					t.Fatal(err)
				}
				defer mem.Close()
				if err := vm.SetMemslot(hv.Memslot{GPA: 0xffff0000, Size: 0x10000, Memory: mem}); err != nil {
					t.Fatal(err)
				}
			}
			v, _ := vm.NewVCPU(0)
			e, err := v.Run(context.Background())
			if err != nil || e.Kind() != c.want {
				t.Fatalf("Run in real mode = %v, %v; want %v", e, err, c.want)
			}
		})
	}
}

func TestStringIO(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.DX, asm.Imm(0x3f8))
		a.Mov(asm.RSI, asm.Imm(dataGPA))
		a.Mov(asm.ECX, asm.Imm(3))
		a.Rep().Outsb()
		a.Mov(asm.RDI, asm.Imm(dataGPA+0x100))
		a.Mov(asm.ECX, asm.Imm(2))
		a.Rep().Insb()
		done(a)
	})
	g := newTestGuest(t, newEmu(t), guestOpt{user: true}, code)
	copy(g.mem.Bytes()[dataGPA:], "abc")
	var out []byte
	for i := 0; i < 3; i++ {
		io := g.runIO(t)
		if io.In || io.Port != 0x3f8 {
			t.Fatalf("exit %v", io)
		}
		out = append(out, byte(io.Value()))
	}
	for i := 0; i < 2; i++ {
		io := g.runIO(t)
		if !io.In {
			t.Fatalf("exit %v", io)
		}
		io.SetValue(uint64('x' + i))
	}
	r := g.runDone(t)
	if string(out) != "abc" || string(g.mem.Bytes()[dataGPA+0x100:dataGPA+0x102]) != "xy" || r.RCX != 0 {
		t.Fatalf("out %q in %q rcx %d", out, g.mem.Bytes()[dataGPA+0x100:dataGPA+0x102], r.RCX)
	}
}

// TestOutRIPRule: at a port-output exit RIP is at the OUT (VMX, the
// default) or past it (kvm_pvm); either way the next Run goes on after
// it, unless the host moved RIP meanwhile.
func TestOutRIPRule(t *testing.T) {
	var out, after, other uint64
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.EAX, asm.Imm(0x11))
		out = a.PC()
		a.Out(asm.Imm(0x80), asm.AL)
		after = a.PC()
		a.Mov(asm.EAX, asm.Imm(0x22))
		done(a)
		other = a.PC()
		a.Mov(asm.EAX, asm.Imm(0x33))
		done(a)
	})
	for _, tc := range []struct {
		rule    OutRIPRule
		atExit  uint64
		moveRIP bool
		wantRAX uint64
	}{
		{OutRIPAtInsn, out, false, 0x22},
		{OutRIPPast, after, false, 0x22},
		{OutRIPAtInsn, out, true, 0x33},
		{OutRIPPast, after, true, 0x33},
	} {
		name := tc.rule.String()
		if tc.moveRIP {
			name += "/host moves rip"
		}
		t.Run(name, func(t *testing.T) {
			g := newTestGuest(t, New(Options{OutRIP: tc.rule}), guestOpt{}, code)
			io := g.runIO(t)
			if io.Port != 0x80 || io.Value() != 0x11 {
				t.Fatalf("exit %v, want out 0x80", io)
			}
			r, _ := g.vcpu.Regs()
			if r.RIP != tc.atExit {
				t.Fatalf("rip %#x at the exit, want %#x", r.RIP, tc.atExit)
			}
			if tc.moveRIP {
				r.RIP = other
				if err := g.vcpu.SetRegs(&r); err != nil {
					t.Fatal(err)
				}
			}
			if r := g.runDone(t); r.RAX != tc.wantRAX {
				t.Fatalf("rax %#x after the next run, want %#x", r.RAX, tc.wantRAX)
			}
		})
	}
}

// TestOutRIPRuleStep: a host single-step armed at an OUT exit. With RIP
// at the OUT the next run completes it as a stepped instruction (VMX's
// kvm_skip_emulated_instruction) and exits right after it; with RIP past
// it the first step is the next instruction.
func TestOutRIPRuleStep(t *testing.T) {
	var after, next uint64
	code := assemble(t, func(a *asm.Assembler) {
		a.Out(asm.Imm(0x80), asm.AL)
		after = a.PC()
		a.Mov(asm.EAX, asm.Imm(0x22))
		next = a.PC()
		done(a)
	})
	for rule, want := range map[OutRIPRule]uint64{OutRIPAtInsn: after, OutRIPPast: next} {
		t.Run(rule.String(), func(t *testing.T) {
			g := newTestGuest(t, New(Options{OutRIP: rule}), guestOpt{}, code)
			g.runIO(t)
			if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}); err != nil {
				t.Fatal(err)
			}
			if d, ok := g.run(t).(*hv.DebugExit); !ok || d.PC != want || d.DR6&dr6BS == 0 {
				t.Fatalf("exit %v, want a step exit at %#x", d, want)
			}
		})
	}
}
