package guest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// TestHandlers installs a handler per case, lets test code raise the
// vector, and checks what the handler saw (its SYNC), that the interrupted
// code resumed with its registers intact, and the counts on both sides.
func TestHandlers(t *testing.T) {
	cases := []struct {
		name   string
		vector int
		eoi    bool
		// body reports through SYNC 2; raise makes the vector happen once.
		body  func(p *guest.Program, f guest.Frame)
		raise func(p *guest.Program)
		check func(t *testing.T, args []uint64, mode guest.Mode)
	}{
		{"#BP from int3", 3, false,
			func(p *guest.Program, f guest.Frame) {
				p.Mov(asm.RAX, f.CS)
				p.Mov(asm.RBX, asm.RSP)
				p.Sync(2, asm.RAX, asm.RBX)
			},
			func(p *guest.Program) { p.Int3() },
			func(t *testing.T, args []uint64, mode guest.Mode) {
				if args[1]&3 != uint64(mode) {
					t.Errorf("interrupted CS %#x, want RPL %d", args[1], mode)
				}
				// IST2: below the reporting stubs' stack, inside the vCPU block.
				if rsp := args[2]; rsp >= guest.StackTop(0)-0xa000 || rsp < guest.StackTop(0)-0xc000 {
					t.Errorf("handler RSP %#x not on the IST2 stack", rsp)
				}
			}},
		{"device interrupt with EOI from int 0x40", 0x40, true,
			func(p *guest.Program, f guest.Frame) { p.Sync(2) },
			func(p *guest.Program) { p.Int(0x40) },
			nil},
		{"#DB from a single step", 1, false,
			func(p *guest.Program, f guest.Frame) {
				p.Mov(asm.RAX, f.RFLAGS)
				p.Sync(2, asm.RAX)
				p.And(f.RFLAGS, asm.Imm(^int64(hv.FlagTF))) // stop stepping
			},
			func(p *guest.Program) {
				p.Pushfq()
				p.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
				p.Popfq()
				p.Nop() // #DB after this instruction
			},
			func(t *testing.T, args []uint64, mode guest.Mode) {
				if args[1]&hv.FlagTF == 0 {
					t.Errorf("interrupted RFLAGS %#x lacks TF", args[1])
				}
			}},
		{"#GP with an error code skips the instruction", 13, false,
			func(p *guest.Program, f guest.Frame) {
				if !f.HasErrorCode {
					panic("#GP frame without an error code")
				}
				p.Mov(asm.RAX, f.ErrorCode)
				p.Sync(2, asm.RAX)
				p.Add(f.RIP, asm.Imm(3)) // mov rax, [rbx] is 3 bytes
			},
			func(p *guest.Program) {
				p.Push(asm.RBX)
				p.MovAbs(asm.RBX, 1<<63) // non-canonical
				p.Mov(asm.RAX, asm.Q(asm.RBX, 0))
				p.Pop(asm.RBX)
			},
			func(t *testing.T, args []uint64, mode guest.Mode) {
				if args[1] != 0 {
					t.Errorf("#GP error code %#x, want 0", args[1])
				}
			}},
	}
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				cfg := guest.Config{Mode: mode}
				if c.eoi {
					cfg = apicConfig(t, h, mode)
				}
				g := newGuest(t, h, cfg)
				if err := g.Handle(guest.Handler{Vector: c.vector, Body: c.body, EOI: c.eoi}); err != nil {
					t.Fatal(err)
				}
				p := g.Program()
				p.Mov(asm.R12, asm.Imm(0x1234))
				c.raise(p)
				c.raise(p)
				p.Mov(asm.EAX, p.InterruptCount(c.vector))
				p.Sync(3, asm.RAX, asm.R12)
				p.Done()
				if err := g.Load(p); err != nil {
					t.Fatal(err)
				}
				var seen [][]uint64
				if err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error {
					seen = append(seen, u.Args)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				if len(seen) != 3 || seen[0][0] != 2 || seen[1][0] != 2 || seen[2][0] != 3 {
					t.Fatalf("syncs %v, want two from the handler, then the test's", seen)
				}
				if c.check != nil {
					c.check(t, seen[0], mode)
				}
				if seen[2][1] != 2 || seen[2][2] != 0x1234 {
					t.Fatalf("guest count %d and r12 %#x after two runs, want 2 and 0x1234", seen[2][1], seen[2][2])
				}
				if n, err := g.InterruptCount(0, c.vector); err != nil || n != 2 {
					t.Fatalf("host count %d, %v; want 2", n, err)
				}
			})
		}
	})
}

// TestWaitInterrupts: CPL3 code cannot hlt, so it spins on its count
// while the host raises the interrupt from another goroutine, as a device
// completing work does.
func TestWaitInterrupts(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, apicConfig(t, h, mode))
		const vec = 0x41
		if err := g.Handle(guest.Handler{Vector: vec, EOI: true}); err != nil {
			t.Fatal(err)
		}
		p := g.Program()
		// A software-disabled APIC takes no interrupts: enable it, as an OS does.
		p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
		p.Int(vec)
		p.WaitInterrupts(vec, asm.Imm(1)) // already there: no wait
		p.Sync(1)
		p.Mov(asm.RCX, asm.Imm(3))
		p.WaitInterrupts(vec, asm.RCX)
		p.DisableInterrupts()
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		raised := make(chan error, 1)
		if err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error {
			go func() {
				// Two interrupts while the guest spins, the second once
				// the first was taken: raised together they would
				// coalesce in the IRR, as edge interrupts do.
				for want := uint32(2); want <= 3; want++ {
					time.Sleep(5 * time.Millisecond)
					if err := g.VM.Interrupt(0, vec); err != nil {
						raised <- err
						return
					}
					for {
						n, err := g.InterruptCount(0, vec)
						if err != nil || n >= want {
							if err != nil {
								raised <- err
								return
							}
							break
						}
						time.Sleep(time.Millisecond)
					}
				}
				raised <- nil
			}()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := <-raised; err != nil {
			t.Fatal(err)
		}
		if n, err := g.InterruptCount(0, vec); err != nil || n != 3 {
			t.Fatalf("count %d, %v; want 3 (one int, two raised by the host)", n, err)
		}
	})
}

func TestHandlerErrors(t *testing.T) {
	g := newGuest(t, backends(t)[0], guest.Config{})
	cases := []struct {
		name    string
		h       guest.Handler
		wantErr string
	}{
		{"vector out of range", guest.Handler{Vector: 256}, "vector 256 is not in [0, 256)"},
		{"negative vector", guest.Handler{Vector: -1}, "vector -1"},
		{"body with a bad ucall", guest.Handler{Vector: 3, Body: func(p *guest.Program, f guest.Frame) {
			p.Sync(1, asm.Imm(1<<40))
		}}, "guest handler for #BP: ucall SYNC argument 1: immediate 0x10000000000 does not fit"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := g.Handle(c.h); err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want %q", err, c.wantErr)
			}
		})
	}
	if _, err := g.InterruptCount(1, 5); err == nil || !strings.Contains(err.Error(), "interrupt count: no vcpu 1") {
		t.Fatalf("count of a vCPU that does not exist: err = %v", err)
	}
	if _, err := g.InterruptCount(0, 300); err == nil || !strings.Contains(err.Error(), "vector 300") {
		t.Fatalf("count of vector 300: err = %v", err)
	}
}

// TestHandlerFaultIsReported: an exception inside a handler body reaches
// the reporting stubs and names the body's Go line.
func TestHandlerFaultIsReported(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		if err := g.Handle(guest.Handler{Vector: 3, Body: func(p *guest.Program, f guest.Frame) {
			p.Ud2() // the faulting line
		}}); err != nil {
			t.Fatal(err)
		}
		p := g.Program()
		p.Int3()
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		err := g.RunUntilDone(ctx(t), 0, nil)
		var xe *guest.ExceptionError
		if !errors.As(err, &xe) || xe.Vector != 6 || !strings.Contains(xe.Source, "handler_test.go") {
			t.Fatalf("err = %v, want #UD built in handler_test.go", err)
		}
	})
}

// apicConfig is a guest configuration with interrupt controllers, so the
// guest's APIC page is a local APIC; it skips where the backend has none.
func apicConfig(t *testing.T, h hv.Hypervisor, mode guest.Mode) guest.Config {
	t.Helper()
	if err := h.Caps().Require(hv.CapIRQChip); err != nil {
		t.Skip(err)
	}
	return guest.Config{Mode: mode, VM: hv.VMConfig{IRQChip: true}}
}

// TestAPICAccess programs APIC registers from test code at either CPL,
// through an immediate and through RAX (which APICWrite must not use as
// its scratch then).
func TestAPICAccess(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, apicConfig(t, h, mode))
		p := g.Program()
		p.APICRead(asm.RBX, guest.APICVersion)
		p.APICWrite(guest.APICSVR, asm.Imm(guest.APICSVREnable|0xff))
		p.Mov(asm.RAX, asm.Imm(0x30))
		p.APICWrite(guest.APICTPR, asm.RAX)
		p.APICRead(asm.RCX, guest.APICTPR)
		p.APICWrite(guest.APICLVTPerf, asm.Imm(0x45))
		p.APICRead(asm.RDX, guest.APICLVTPerf)
		p.APICRead(asm.RSI, guest.APICSVR)
		p.Sync(1, asm.RBX, asm.RCX, asm.RDX, asm.RSI, asm.RAX)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error { got = u.Args; return nil }); err != nil {
			t.Fatal(err)
		}
		want := []uint64{1, 0x50014, 0x30, 0x45, 0x1ff, 0x30}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("sync %#x, want %#x (stage, version, TPR, LVT perf, SVR, RAX kept)", got, want)
			}
		}
	})
}

// TestInterruptFlag: CPL3 guests run with IOPL 3, so test code may cli and
// sti; CPL0 guests keep IOPL 0, which ring 0 does not need.
func TestInterruptFlag(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		p := g.Program()
		p.DisableInterrupts()
		p.Pushfq()
		p.Pop(asm.RAX)
		p.EnableInterrupts()
		p.Pushfq()
		p.Pop(asm.RBX)
		p.DisableInterrupts()
		p.Sync(1, asm.RAX, asm.RBX)
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		if err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error { got = u.Args; return nil }); err != nil {
			t.Fatal(err)
		}
		wantIOPL := uint64(0)
		if mode == guest.CPL3 {
			wantIOPL = hv.FlagIOPL
		}
		if got[1]&hv.FlagIF != 0 || got[2]&hv.FlagIF == 0 || got[1]&hv.FlagIOPL != wantIOPL {
			t.Fatalf("rflags after cli %#x, after sti %#x; want IF off then on, IOPL %#x", got[1], got[2], wantIOPL)
		}
	})
}

// TestDebugLog: a guest.DebugLog handler records every single-step trap
// (saved RIP, DR6 with BS); DebugRecords returns them oldest first, the
// last DebugLogEntries once the log wrapped.
func TestDebugLog(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		for _, loops := range []int{1, 40} {
			g := newGuest(t, h, guest.Config{Mode: mode})
			log, err := g.Alloc(guest.DebugLogSize, 4096)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Handle(guest.DebugLog(log)); err != nil {
				t.Fatal(err)
			}
			p := g.Program()
			p.Mov(asm.ECX, asm.Imm(int64(loops)))
			p.Pushfq()
			p.Or(asm.Q(asm.RSP, 0), asm.Imm(hv.FlagTF))
			p.Popfq() // no trap: TF was clear
			loop := p.Here()
			p.Dec(asm.ECX)
			jnz := p.Here()
			p.Jcc(asm.CondNZ, loop)
			p.Pushfq()
			p.And(asm.Q(asm.RSP, 0), asm.Imm(^int64(hv.FlagTF)))
			p.Popfq() // a trap: TF was set
			end := p.Here()
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			if err := g.RunUntilDone(ctx(t), 0, nil); err != nil {
				t.Fatal(err)
			}
			recs, err := g.DebugRecords(0, log)
			if err != nil {
				t.Fatal(err)
			}
			total := 2*loops + 3
			want := min(total, guest.DebugLogEntries)
			a := func(l *asm.Label) uint64 { v, _ := p.Addr(l); return v }
			if len(recs) != want || recs[len(recs)-1].RIP != a(end) || recs[0].DR6 != 0xffff4ff0 {
				t.Fatalf("%d loops: %d records (last %+v, first %+v), want %d ending at %#x with BS", loops, len(recs), recs[len(recs)-1], recs[0], want, a(end))
			}
			if loops == 1 && (recs[0].RIP != a(jnz) || recs[1].RIP != a(jnz)+2) {
				t.Fatalf("records %+v, want the dec's and the jnz's traps first", recs)
			}
		}
	})
}
