package emu

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// FuzzExecute runs random bytes as guest code from a random register
// state. Whatever the guest does, the host must not panic or hang: every
// outcome is a guest exception, a typed exit or a context stop, and an
// internal-error exit that reports an emulator bug fails the test.
func FuzzExecute(f *testing.F) {
	f.Add([]byte{0x48, 0x01, 0xd8, 0xe6, 0xf0})                    // add rax, rbx; out
	f.Add([]byte{0xf3, 0x48, 0xab, 0xeb, 0xfe})                    // rep stosq; jmp .
	f.Add([]byte{0xf0, 0x48, 0x0f, 0xb1, 0x0b, 0xcd, 0x03})        // lock cmpxchg; int 3
	f.Add([]byte{0x0f, 0x22, 0xd8, 0x8f, 0x00, 0x48, 0xcf})        // mov cr3, rax; pop [rax]; iretq
	f.Add(append(make([]byte, 136), 0x0f, 0x01, 0xc1, 0x0f, 0x0b)) // vmcall; ud2
	f.Fuzz(func(t *testing.T, data []byte) {
		var regs hv.Regs
		user := false
		if len(data) >= 136 {
			for i := 0; i < 16; i++ {
				regs.SetGPR(i, binary.LittleEndian.Uint64(data[8*i:]))
			}
			regs.RFLAGS = binary.LittleEndian.Uint64(data[128:]) & (hv.FlagsArith | hv.FlagDF | hv.FlagTF | hv.FlagIF | hv.FlagIOPL)
			user = data[128]&0x80 != 0
			data = data[136:]
		}
		if len(data) > 4096 {
			data = data[:4096]
		}
		g := newTestGuest(t, New(Options{}), guestOpt{user: user, memSize: 4 << 20}, data)
		regs.RIP = codeGPA
		regs.RFLAGS |= hv.FlagsFixed
		if err := g.vcpu.SetRegs(&regs); err != nil {
			t.Fatal(err)
		}
		fuzzRun(t, g, 20*time.Millisecond, 64, nil)
	})
}

// fuzzRun runs a fuzzed guest for at most runs exits or d: every outcome
// must be a typed exit, a guest exception or the context's end; an
// internal error that reports an emulator bug fails the test. done, if
// set, ends the run at an exit it recognises.
func fuzzRun(t *testing.T, g *testGuest, d time.Duration, runs int, done func(hv.Exit) bool) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for i := 0; i < runs; i++ {
		e, err := g.vcpu.Run(ctx)
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("Run: %v", err)
			}
			return
		}
		switch x := e.(type) {
		case *hv.InternalErrorExit:
			if x.Suberror == internalEmuBug {
				t.Fatalf("emulator bug: %s", g.vcpu.(*VCPU).c.internalMsg)
			}
			return
		case *hv.HaltExit, *hv.ShutdownExit, *hv.FailEntryExit:
			return
		}
		if done != nil && done(e) {
			return
		}
	}
}
