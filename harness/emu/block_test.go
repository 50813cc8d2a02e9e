package emu

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// straightProgram is one long block: eight register additions, then done.
// mid is the address of the fifth addition.
func straightProgram(t *testing.T) (code []byte, mid uint64) {
	code = assemble(t, func(a *asm.Assembler) {
		a.Xor(asm.EAX, asm.EAX)
		for i := 0; i < 8; i++ {
			if i == 4 {
				mid = a.PC()
			}
			a.Add(asm.EAX, asm.Imm(1))
		}
		done(a)
	})
	return code, mid
}

// TestBlockBreakpointAfterCaching: an execute breakpoint set on an
// instruction in the middle of a block that has already run (and so is
// decoded as one block) stops there, with exactly the instructions before
// it executed, and the run goes on from it.
func TestBlockBreakpointAfterCaching(t *testing.T) {
	code, mid := straightProgram(t)
	g := newTestGuest(t, New(Options{}), guestOpt{}, code)
	if r := g.runDone(t); r.RAX != 8 {
		t.Fatalf("rax %d, want 8", r.RAX)
	}
	st, _ := g.vcpu.Stats()
	if n, _ := st.Get("blocks"); n == 0 {
		t.Fatal("no block ran")
	}
	gd := hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugUseHWBP}
	gd.DebugReg[0] = mid
	gd.DebugReg[7] = 1 | dr7Fixed
	if err := g.vcpu.SetGuestDebug(&gd); err != nil {
		t.Fatal(err)
	}
	g.setup(t, g.vcpu, codeGPA)
	e := g.run(t)
	d, ok := e.(*hv.DebugExit)
	if !ok || d.PC != mid {
		t.Fatalf("exit %v, want a debug exit at %#x", e, mid)
	}
	if r, _ := g.vcpu.Regs(); r.RAX != 4 || r.RIP != mid {
		t.Fatalf("at the breakpoint: rax %d rip %#x, want 4 at %#x", r.RAX, r.RIP, mid)
	}
	if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{}); err != nil {
		t.Fatal(err)
	}
	if r := g.runDone(t); r.RAX != 8 {
		t.Fatalf("rax %d after resuming, want 8", r.RAX)
	}
}

// TestBlockSingleStep: single-stepping through a cached block stops after
// every instruction.
func TestBlockSingleStep(t *testing.T) {
	code, _ := straightProgram(t)
	g := newTestGuest(t, New(Options{}), guestOpt{}, code)
	g.runDone(t)
	g.setup(t, g.vcpu, codeGPA)
	if err := g.vcpu.SetGuestDebug(&hv.GuestDebug{Flags: hv.DebugEnable | hv.DebugSingleStep}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 9; i++ {
		e := g.run(t)
		if _, ok := e.(*hv.DebugExit); !ok {
			t.Fatalf("step %d: exit %v, want a debug exit", i, e)
		}
		r, _ := g.vcpu.Regs()
		if want := uint64(i); r.RAX != want {
			t.Fatalf("step %d: rax %d, want %d", i, r.RAX, want)
		}
	}
}

// TestDecodeCacheEvictionKeepsRunningCode: with a budget too small for
// more than a page or two, code that spans many pages and loops over them
// still computes the right result (pages are dropped and decoded again).
func TestDecodeCacheEvictionKeepsRunningCode(t *testing.T) {
	code := assemble(t, func(a *asm.Assembler) {
		a.Xor(asm.EAX, asm.EAX)
		a.Mov(asm.ECX, asm.Imm(50))
		top := a.Here()
		for p := 0; p < 6; p++ {
			for i := 0; i < 600; i++ { // 600 x 5 bytes: a little over 0.7 page
				a.Add(asm.EAX, asm.Imm(int64(p+1)))
			}
		}
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, top)
		done(a)
	})
	g := newTestGuest(t, New(Options{DecodeCacheBytes: 64 << 10}), guestOpt{}, code)
	r := g.runDone(t)
	if want := uint64(50 * 600 * (1 + 2 + 3 + 4 + 5 + 6)); r.RAX != want {
		t.Fatalf("rax %d, want %d", r.RAX, want)
	}
	st, _ := g.vcpu.Stats()
	if n, _ := st.Get("code_evictions"); n == 0 {
		t.Fatal("the budget never evicted anything")
	}
	if n, _ := st.Get("decode_cache_bytes"); n > 64<<10+uint64(codePageCost+blockTabCost+blockCost+maxBlock*instCost) {
		t.Fatalf("decode cache at %d bytes, budget %d", n, 64<<10)
	}
}

// FuzzBlocksMatchSteps runs random code from a random state twice: as
// blocks, and one instruction at a time through the slow path (stepOnly).
// Both must stop with the same exit, registers and memory: the block loop
// is only a faster way of running the same instructions. (Code that could
// read the TSC is left out: the host clock differs between the runs.)
func FuzzBlocksMatchSteps(f *testing.F) {
	f.Add([]byte{0x48, 0x01, 0xd8, 0xe6, 0xf0}) // add rax, rbx; out
	// mov ecx, 5; l: add eax, ecx; cmp eax, 7; jb +2; xor eax, eax; dec ecx; jnz l; out
	f.Add([]byte{0xb9, 5, 0, 0, 0, 0x01, 0xc8, 0x83, 0xf8, 7, 0x72, 2, 0x31, 0xc0, 0xff, 0xc9, 0x75, 0xf1, 0xe6, 0xf0})
	// lea rsi, [rip+4]; mov byte [rsi], 0x90; ud2 (patched to nop; nop); out
	f.Add([]byte{0x48, 0x8d, 0x35, 0x03, 0, 0, 0, 0xc6, 0x06, 0x90, 0x0f, 0x0b, 0xe6, 0xf0})
	f.Add([]byte{0xf0, 0x48, 0x0f, 0xb1, 0x0b, 0x48, 0xf7, 0xf3, 0xcd, 0x03}) // lock cmpxchg; div rbx; int3
	// mov ecx, 8; mov eax, 0x12345; l: shr eax, 1; jnc +5; xor eax, 0xedb88320; dec ecx; jnz l; out
	f.Add([]byte{0xb9, 8, 0, 0, 0, 0xb8, 0x45, 0x23, 0x01, 0, 0xc1, 0xe8, 1, 0x73, 5, 0x35, 0x20, 0x83, 0xb8, 0xed, 0xff, 0xc9, 0x75, 0xf2, 0xe6, 0xf0})
	// the same at 64 bits with JC, XOR of another register and a shift by 3
	f.Add([]byte{0xb9, 8, 0, 0, 0, 0xb8, 0x45, 0x23, 0x01, 0, 0x48, 0xc1, 0xe8, 3, 0x72, 7, 0x48, 0x81, 0xf3, 0x20, 0x83, 0xb8, 0xed, 0xff, 0xc9, 0x75, 0xf0, 0xe6, 0xf0})
	// shr eax, 0 (flags unchanged); jnc +3; xor edx, 5; out
	f.Add([]byte{0xc1, 0xe8, 0, 0x73, 3, 0x83, 0xf2, 5, 0xe6, 0xf0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var regs hv.Regs
		if len(data) >= 128 {
			for i := 0; i < 16; i++ {
				regs.SetGPR(i, binary.LittleEndian.Uint64(data[8*i:]))
			}
			data = data[128:]
		}
		if len(data) > 4096 {
			data = data[:4096]
		}
		if bytes.Contains(data, []byte{0x0f, 0x31}) || bytes.Contains(data, []byte{0x0f, 0x01, 0xf9}) {
			return // RDTSC, RDTSCP: host time, different in each run
		}
		regs.RIP = codeGPA
		regs.RSP = kstackTop - 0x100
		regs.RFLAGS = hv.FlagsFixed
		var outs [2]string
		for mode := range outs {
			g := newTestGuest(t, New(Options{}), guestOpt{memSize: 4 << 20}, data)
			if err := g.vcpu.SetRegs(&regs); err != nil {
				t.Fatal(err)
			}
			c := g.vcpu.(*VCPU).c
			c.stepOnly = mode == 1
			c.updateSlow()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			e, err := g.vcpu.Run(ctx)
			cancel()
			if err != nil {
				return // ran out of time (a loop): nothing to compare
			}
			if x, ok := e.(*hv.InternalErrorExit); ok && x.Suberror == internalEmuBug {
				t.Fatalf("emulator bug: %s", c.internalMsg)
			}
			r, _ := g.vcpu.Regs()
			st, _ := g.vcpu.Stats()
			n, _ := st.Get("instructions")
			outs[mode] = fmt.Sprintf("%v\n%v\n%d instructions\nmemory %x", e, r, n, sha256.Sum256(g.mem.Bytes()))
		}
		if outs[0] != outs[1] {
			t.Fatalf("blocks and single instructions differ:\nblocks: %s\nsteps:  %s", outs[0], outs[1])
		}
	})
}

// TestBlockLinkAfterInvlpg: a block that ends with INVLPG of its own page
// is never followed through a block link. The code at va4K+0x3000 runs
// twice: the first pass rewrites its PTE to the same page, the second
// to a page holding other code at the next block's offset, which must
// run (a link made on the first pass would still lead to the old block).
func TestBlockLinkAfterInvlpg(t *testing.T) {
	const vCode = va4K + 0x3000
	head := func(a *asm.Assembler) {
		a.Mov(asm.Q(asm.RCX, 0), asm.R8) // the PTE of vCode
		a.Invlpg(asm.Q(asm.RBX, 0))
	}
	k := len(assemble(t, head))
	p1 := assemble(t, func(a *asm.Assembler) {
		top := a.Here()
		head(a)
		a.Mov(asm.EDX, asm.Imm(1))
		a.Mov(asm.R8, asm.R9)
		a.Dec(asm.ESI)
		a.Jcc(asm.CondNZ, top)
		done(a)
	})
	p2 := assemble(t, func(a *asm.Assembler) {
		for range k {
			a.Nop()
		}
		a.Mov(asm.EDX, asm.Imm(2))
		done(a)
	})
	code := assemble(t, func(a *asm.Assembler) {
		a.Mov(asm.RBX, asm.Imm(vCode))
		a.Mov(asm.RCX, asm.Imm(pte4KGPA+8*3))
		a.Mov(asm.R8, asm.Imm(vCode|7))         // first pass: the same page
		a.Mov(asm.R9, asm.Imm((va4K+0x4000)|7)) // second pass: the other code
		a.Mov(asm.ESI, asm.Imm(2))
		a.JmpInd(asm.RBX)
	})
	for _, blocks := range []bool{true, false} {
		g := newTestGuest(t, newEmu(t), guestOpt{}, code)
		if !blocks {
			g.vcpu.(*VCPU).c.stepOnly = true
		}
		b := g.mem.Bytes()
		split4K(b, func(uint64) uint64 { return 7 })
		copy(b[vCode:], p1)
		copy(b[va4K+0x4000:], p2)
		if r := g.runDone(t); r.RDX != 2 || r.RSI != 1 {
			t.Fatalf("blocks %v: rdx %d rsi %d, want 2 and 1 (the remapped code)", blocks, r.RDX, r.RSI)
		}
	}
}
