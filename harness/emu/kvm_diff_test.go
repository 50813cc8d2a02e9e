package emu

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"testing"
	"time"

	"golang.org/x/arch/x86/x86asm"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// kvmOrSkip opens the real backend for differential tests.
func kvmOrSkip(tb testing.TB) hv.Hypervisor {
	tb.Helper()
	if testing.Short() {
		tb.Skip("differential tests against KVM are not run in -short mode")
	}
	h, err := kvm.Open(kvm.Options{})
	if err != nil {
		tb.Skipf("kvm backend unavailable: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func TestKVMSmoke(t *testing.T) {
	h := kvmOrSkip(t)
	for _, user := range []bool{false, true} {
		code := assemble(t, func(a *asm.Assembler) {
			a.Mov(asm.RAX, asm.Imm(5))
			a.Mov(asm.RBX, asm.Imm(7))
			a.Add(asm.RAX, asm.RBX)
			done(a)
		})
		g := newTestGuest(t, h, guestOpt{user: user}, code)
		r := g.runDone(t)
		if r.RAX != 12 {
			t.Fatalf("user=%v: regs %v", user, r)
		}
	}
}

// diffProg is one instruction (or a short sequence) run on both backends
// from the same random state.
type diffProg struct {
	name  string
	op    x86asm.Op // the flag-defining instruction, for UndefinedFlags
	size  int
	count func(r *hv.Regs) int // masked shift/rotate count, when relevant
	fix   func(r *hv.Regs, rnd *rand.Rand)
	build func(a *asm.Assembler)
	// kvmDeviation, when set, says why this host's KVM is known to differ:
	// the case runs on both and must differ (or the note is stale).
	kvmDeviation string
}

// diffOutcome is what a run leaves behind.
type diffOutcome struct {
	exit string
	regs hv.Regs
	data []byte
}

var edgeValues = []uint64{0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000,
	0x7fffffff, 0x80000000, 0xffffffff, 0x100000000, 1<<63 - 1, 1 << 63, ^uint64(0), ^uint64(0) - 1}

func randValue(rnd *rand.Rand) uint64 {
	switch rnd.Intn(4) {
	case 0:
		return edgeValues[rnd.Intn(len(edgeValues))]
	case 1:
		return uint64(rnd.Intn(64))
	}
	return rnd.Uint64()
}

const diffData = dataGPA         // data area compared after each run
const diffDataLen = 0x400        // bytes
const diffPtr = diffData + 0x200 // RBP, RSI, RDI point into the middle

func randRegs(rnd *rand.Rand) hv.Regs {
	var r hv.Regs
	for i := 0; i < 16; i++ {
		r.SetGPR(i, randValue(rnd))
	}
	r.RSP = ustackTop
	r.RBP = diffPtr
	r.RSI = diffPtr - 0x40
	r.RDI = diffPtr + 0x40
	r.RIP = codeGPA
	// IF is set: KVM (kvm_pvm) always runs ring-3 code with IF=1, so
	// PUSHF would differ otherwise.
	r.RFLAGS = hv.FlagsFixed | hv.FlagIF | rnd.Uint64()&(hv.FlagsArith)
	return r
}

type diffRunner struct {
	g    *testGuest
	name string
}

func (d *diffRunner) run(t *testing.T, code []byte, regs hv.Regs, data []byte) diffOutcome {
	t.Helper()
	g := d.g
	b := g.mem.Bytes()
	copy(b[codeGPA:], code)
	copy(b[diffData:], data)
	g.setup(t, g.vcpu, codeGPA)
	if err := g.vcpu.SetRegs(&regs); err != nil {
		t.Fatal(err)
	}
	e := g.run(t)
	var o diffOutcome
	o.exit = e.String()
	o.regs, _ = g.vcpu.Regs()
	o.data = append([]byte(nil), b[diffData:diffData+diffDataLen]...)
	return o
}

func TestDifferentialKVM(t *testing.T) {
	hk := kvmOrSkip(t)
	he := newEmu(t)
	seed := time.Now().UnixNano()
	if s := os.Getenv("EMU_DIFF_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d (EMU_DIFF_SEED to repeat)", seed)
	iters := 12
	kr := &diffRunner{g: newTestGuest(t, hk, guestOpt{user: true}, nil), name: "kvm"}
	er := &diffRunner{g: newTestGuest(t, he, guestOpt{user: true}, nil), name: "emu"}
	for _, p := range diffPrograms() {
		t.Run(p.name, func(t *testing.T) {
			rnd := rand.New(rand.NewSource(seed ^ int64(len(p.name))*7919))
			code := assemble(t, func(a *asm.Assembler) {
				p.build(a)
				done(a)
			})
			for i := 0; i < iters; i++ {
				regs := randRegs(rnd)
				if p.fix != nil {
					p.fix(&regs, rnd)
				}
				data := make([]byte, diffDataLen)
				rnd.Read(data)
				ko := kr.run(t, code, regs, data)
				eo := er.run(t, code, regs, data)
				msg := compareOutcome(p, &regs, ko, eo)
				if p.kvmDeviation != "" {
					if msg == "" {
						t.Errorf("known KVM deviation %q did not show: remove it", p.kvmDeviation)
					} else {
						t.Logf("known KVM deviation (%s):\n%s", p.kvmDeviation, msg)
					}
					return
				}
				if msg != "" {
					t.Errorf("iteration %d from %v:\n%s", i, regs, msg)
					return
				}
			}
		})
	}
}

func compareOutcome(p diffProg, in *hv.Regs, k, e diffOutcome) string {
	var msg string
	if k.exit != e.exit {
		msg += fmt.Sprintf("exit: kvm %s, emu %s\n", k.exit, e.exit)
	}
	for i := 0; i < 16; i++ {
		if k.regs.GPR(i) != e.regs.GPR(i) {
			msg += fmt.Sprintf("%s: kvm %#x, emu %#x\n", hv.GPRNames[i], k.regs.GPR(i), e.regs.GPR(i))
		}
	}
	if k.regs.RIP != e.regs.RIP {
		msg += fmt.Sprintf("rip: kvm %#x, emu %#x\n", k.regs.RIP, e.regs.RIP)
	}
	cnt := 0
	if p.count != nil {
		cnt = p.count(in)
	}
	mask := uint64(hv.FlagsArith|hv.FlagDF) &^ UndefinedFlags(p.op, cnt, p.size)
	if (k.regs.RFLAGS^e.regs.RFLAGS)&mask != 0 {
		msg += fmt.Sprintf("rflags: kvm %#x, emu %#x (compared bits %#x)\n", k.regs.RFLAGS, e.regs.RFLAGS, mask)
	}
	for i := range k.data {
		if k.data[i] != e.data[i] {
			msg += fmt.Sprintf("data[%#x]: kvm %#x, emu %#x\n", i, k.data[i], e.data[i])
			break
		}
	}
	return msg
}
