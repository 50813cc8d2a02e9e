package corpus_test

import (
	"bytes"
	"context"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/corpus"
	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

func assemble(t *testing.T, p corpus.Program) []byte {
	t.Helper()
	a := asm.New(0x1000)
	p.Build(a)
	code, err := a.Assemble()
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return code
}

func TestCuratedAssembles(t *testing.T) {
	names := map[string]bool{}
	for _, p := range corpus.Curated() {
		if names[p.Name] {
			t.Errorf("duplicate program name %s", p.Name)
		}
		names[p.Name] = true
		if len(assemble(t, p)) == 0 {
			t.Errorf("%s: empty", p.Name)
		}
	}
	if len(names) < 500 {
		t.Errorf("only %d curated programs", len(names))
	}
}

func TestRandomIsDeterministic(t *testing.T) {
	for seed := int64(1); seed < 50; seed++ {
		a := corpus.Random(rand.New(rand.NewSource(seed)), 20, "a", emu.UndefinedFlags)
		b := corpus.Random(rand.New(rand.NewSource(seed)), 20, "b", emu.UndefinedFlags)
		if !bytes.Equal(assemble(t, a), assemble(t, b)) || a.DefinedFlags != b.DefinedFlags {
			t.Fatalf("seed %d: two programs from one seed differ", seed)
		}
		// Building twice from one program must give the same code too.
		if !bytes.Equal(assemble(t, a), assemble(t, a)) {
			t.Fatalf("seed %d: Build is not repeatable", seed)
		}
	}
}

// TestRandomProgramsRun runs random programs on the reference: they must
// end normally (no exception, no exit), or the differential suite would
// mostly compare fault paths.
func TestRandomProgramsRun(t *testing.T) {
	h := emu.New(emu.Options{})
	g, err := guest.New(h, guest.Config{Mode: guest.CPL3})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	data, err := g.Alloc(corpus.DataLen, 0x1000)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewSource(7))
	for i := 0; i < 300; i++ {
		p := corpus.Random(rnd, 8+rnd.Intn(17), "r", emu.UndefinedFlags)
		gp := g.Program()
		p.Build(gp.Assembler)
		gp.Done()
		if err := g.Load(gp); err != nil {
			t.Fatal(err)
		}
		r := corpus.RandState(rnd)
		r.RSP, r.R15, r.RIP = guest.StackTop(0), guest.UcallPage(0), guest.CodeBase
		r.RBP = data + corpus.DataPtrOffset
		if err := g.VCPUs[0].SetRegs(&r); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := g.RunUntilDone(ctx, 0, nil)
		cancel()
		if err != nil {
			t.Fatalf("program %d did not run to its end: %v", i, err)
		}
	}
}

func TestCompare(t *testing.T) {
	p := corpus.Program{Name: "x", DefinedFlags: hv.FlagCF | 2}
	a := corpus.Outcome{Exit: "done", Data: []byte{1, 2, 3}}
	b := a
	b.Data = []byte{1, 2, 4}
	b.Regs.RBX = 7
	b.Regs.RFLAGS = hv.FlagZF // ZF is not compared here
	msg := corpus.Compare(p, &hv.Regs{}, a, b, "ref", "test", nil)
	for _, want := range []string{"rbx: ref 0x0, test 0x7", "data[0x2]: ref 0x3, test 0x4"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Compare says %q, missing %q", msg, want)
		}
	}
	if strings.Contains(msg, "rflags") {
		t.Errorf("an uncompared flag was reported: %q", msg)
	}
	b.Regs.RFLAGS = hv.FlagCF
	if !strings.Contains(corpus.Compare(p, &hv.Regs{}, a, b, "ref", "test", nil), "rflags") {
		t.Error("a compared flag difference was not reported")
	}
	if corpus.Compare(p, &hv.Regs{}, a, a, "ref", "test", nil) != "" {
		t.Error("identical outcomes differ")
	}
}
