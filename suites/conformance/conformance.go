// Package conformance runs the same guest programs on a backend and on the
// bundled reference (harness/emu) and compares what they leave behind:
// the exit sequence, every GPR, RIP, the architecturally defined flags and
// the data window. Two sources of programs: the curated table of
// harness/corpus (each instruction class in every size and form, each
// exception) and seeded random programs. On a divergence the report shows
// the program, the first differing register or byte, and how to replay it.
package conformance

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/corpus"
	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func init() {
	framework.Register(taxonomy.Conformance, specs)
	framework.DeclareParams(taxonomy.Conformance,
		framework.Param{Key: "conformance.random", Kind: framework.KindCount, Default: "500", Meaning: "random programs per run"},
		framework.Param{Key: "conformance.states", Kind: framework.KindCount, Default: "4", Meaning: "random initial states per curated program"},
	)
}

// Instruction semantics are compared in ring 3, where no privileged state
// (MSRs, control registers, the TSC) can legitimately differ.
const mode = guest.CPL3

// Defaults, overridable with --param.
const (
	defaultStates  = 4   // random initial states per curated program
	defaultRandom  = 500 // random programs per run
	randomBatches  = 10
	randomStates   = 2
	randomMinInsns = 8
	randomMaxInsns = 24
)

func specs(b *framework.Backend) {
	name := func(s string) string { return fmt.Sprintf("%s [%s]", s, mode) }
	skipReference := func() {
		if b.Name == emu.Name {
			Skip("emu is the reference backend: conformance compares other backends with it")
		}
	}

	Describe("curated", func() {
		for _, class := range classes(corpus.Curated()) {
			class := class
			It(name(class.name), func(ctx SpecContext) {
				skipReference()
				states := intParam(b, "conformance.states", defaultStates)
				pair := newPair(b)
				seed := b.Env.Seed ^ int64(len(class.name))*7919
				for _, p := range class.programs {
					rnd := rand.New(rand.NewSource(seed ^ int64(len(p.Name))))
					pair.compare(ctx, p, rnd, states, replay(b, class.name))
				}
				AddReportEntry("compared", fmt.Sprintf("%d programs × %d states", len(class.programs), states))
			}, SpecTimeout(2*time.Minute))
		}
	})

	Describe("random", func() {
		for batch := 0; batch < randomBatches; batch++ {
			batch := batch
			title := fmt.Sprintf("batch %02d", batch)
			It(name(title), taxonomy.Fuzz, func(ctx SpecContext) {
				skipReference()
				total := intParam(b, "conformance.random", defaultRandom)
				per := (total + randomBatches - 1) / randomBatches
				seed := b.Env.Seed + int64(batch)*1_000_003
				By(fmt.Sprintf("%d random programs from seed %d (batch seed %d)", per, b.Env.Seed, seed))
				rnd := rand.New(rand.NewSource(seed))
				pair := newPair(b)
				for i := 0; i < per; i++ {
					n := randomMinInsns + rnd.Intn(randomMaxInsns-randomMinInsns+1)
					p := corpus.Random(rnd, n, fmt.Sprintf("random-%02d-%03d", batch, i), emu.UndefinedFlags)
					pair.compare(ctx, p, rnd, randomStates, replay(b, title))
				}
				AddReportEntry("compared", fmt.Sprintf("%d random programs × %d states, seed %d", per, randomStates, b.Env.Seed))
			}, SpecTimeout(5*time.Minute))
		}
	})
}

func intParam(b *framework.Backend, key string, def int) int {
	v, err := strconv.Atoi(b.Env.Param(key, strconv.Itoa(def)))
	Expect(err).NotTo(HaveOccurred(), "--param %s", key)
	Expect(v).To(BeNumerically(">", 0), "--param %s", key)
	return v
}

func replay(b *framework.Backend, spec string) string {
	return fmt.Sprintf("kvmspec run --backend %s --seed %d --label-filter conformance --focus '%s'", b.Name, b.Env.Seed, spec)
}

type class struct {
	name     string
	programs []corpus.Program
}

// classes groups the curated programs by instruction class ("add/r8,r" →
// "add") so each class is one testcase.
func classes(ps []corpus.Program) []class {
	by := map[string][]corpus.Program{}
	for _, p := range ps {
		c, _, _ := strings.Cut(p.Name, "/")
		by[c] = append(by[c], p)
	}
	out := make([]class, 0, len(by))
	for c, ps := range by {
		out = append(out, class{c, ps})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// side is one backend's guest, reused for every program of a spec.
type side struct {
	name string
	g    *guest.Guest
	data uint64
}

type pair struct{ test, ref *side }

func newPair(b *framework.Backend) *pair {
	GinkgoHelper()
	ref := emu.New(emu.Options{})
	DeferCleanup(ref.Close)
	return &pair{test: newSide(b.Name, b.NewGuest(guest.Config{Mode: mode})),
		ref: newSide(emu.Name, newGuest(ref))}
}

func newGuest(h hv.Hypervisor) *guest.Guest {
	GinkgoHelper()
	g, err := guest.New(h, guest.Config{Mode: mode, Output: GinkgoWriter})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(g.Close)
	return g
}

func newSide(name string, g *guest.Guest) *side {
	GinkgoHelper()
	data, err := g.Alloc(corpus.DataLen, 0x1000)
	Expect(err).NotTo(HaveOccurred())
	return &side{name: name, g: g, data: data}
}

// compare runs p from `states` random states on both sides.
func (pr *pair) compare(ctx context.Context, p corpus.Program, rnd *rand.Rand, states int, replayCmd string) {
	GinkgoHelper()
	code := pr.test.load(p)
	pr.ref.load(p)
	for i := 0; i < states; i++ {
		in := corpus.RandState(rnd)
		if p.Fix != nil {
			p.Fix(&in, rnd)
		}
		data := make([]byte, corpus.DataLen)
		rnd.Read(data)
		got, err := pr.test.run(ctx, in, data)
		Expect(err).NotTo(HaveOccurred(), "%s on %s", p.Name, pr.test.name)
		want, err := pr.ref.run(ctx, in, data)
		Expect(err).NotTo(HaveOccurred(), "%s on %s", p.Name, pr.ref.name)
		if msg := corpus.Compare(p, &in, want, got, pr.ref.name, pr.test.name, emu.UndefinedFlags); msg != "" {
			Fail(divergence(p, in, msg, code, replayCmd))
		}
	}
}

func divergence(p corpus.Program, in hv.Regs, msg string, code []byte, replayCmd string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s diverges from the reference:\n%s", p.Name, msg)
	fmt.Fprintf(&b, "initial state: %v\nprogram:\n", in)
	for _, l := range asm.Disasm(code, guest.CodeBase) {
		fmt.Fprintf(&b, "  %#x  %s\n", l.PC, l.Text)
	}
	fmt.Fprintf(&b, "replay: %s", replayCmd)
	return b.String()
}

// load assembles p followed by DONE and loads it; it returns the code.
func (s *side) load(p corpus.Program) []byte {
	GinkgoHelper()
	gp := s.g.Program()
	p.Build(gp.Assembler)
	gp.Done()
	Expect(s.g.Load(gp)).To(Succeed(), "%s: load on %s", p.Name, s.name)
	// Load assembled and copied it: read the code back rather than
	// assembling a second time.
	code, err := s.g.Bytes(guest.CodeBase, gp.Len())
	Expect(err).NotTo(HaveOccurred())
	return append([]byte(nil), code...)
}

// run executes the loaded program from state in and records the outcome.
// Exits are described in backend-neutral words: port output is merged per
// port (KVM may batch string I/O where another backend exits per element).
func (s *side) run(ctx context.Context, in hv.Regs, data []byte) (corpus.Outcome, error) {
	g := s.g
	if err := g.ResetVCPU(0); err != nil {
		return corpus.Outcome{}, err
	}
	regs := in
	regs.RSP = guest.StackTop(0)
	regs.R15 = guest.UcallPage(0)
	regs.RBP = s.data + corpus.DataPtrOffset
	regs.RSI = regs.RBP - 0x40
	regs.RDI = regs.RBP + 0x40
	regs.RIP = guest.CodeBase
	if err := g.VCPUs[0].SetRegs(&regs); err != nil {
		return corpus.Outcome{}, err
	}
	win, err := g.Bytes(s.data, corpus.DataLen)
	if err != nil {
		return corpus.Outcome{}, err
	}
	copy(win, data)
	var trace []string
	var outPort = -1
	var outData []byte
	flush := func() {
		if outPort >= 0 {
			trace = append(trace, fmt.Sprintf("out port %#x bytes % x", outPort, outData))
			outPort, outData = -1, nil
		}
	}
	run, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
loop:
	for {
		ev, err := g.Run(run, 0)
		if err != nil {
			var xe *guest.ExceptionError
			if errors.As(err, &xe) {
				flush()
				trace = append(trace, "exception "+xe.Exception.String())
				break
			}
			return corpus.Outcome{}, err
		}
		if ev.Ucall != nil {
			if ev.Ucall.Cmd == guest.UcallDone {
				break
			}
			continue
		}
		switch e := ev.Exit.(type) {
		case *hv.IOExit:
			if e.In {
				flush()
				trace = append(trace, fmt.Sprintf("in port %#x size %d", e.Port, e.Size))
				e.SetValue(0x5a5a5a5a)
				continue
			}
			if int(e.Port) != outPort {
				flush()
				outPort = int(e.Port)
			}
			outData = append(outData, e.Data...)
		default:
			flush()
			trace = append(trace, e.String())
			break loop
		}
	}
	flush()
	r, err := g.VCPUs[0].Regs()
	if err != nil {
		return corpus.Outcome{}, err
	}
	// The run ended at a ucall (DONE, or an exception stub's report):
	// where RIP stands at its OUT differs between KVM hosts, where the
	// guest goes on from it does not.
	r.RIP = g.ResumeRIP(r.RIP)
	trace = append(trace, "end")
	return corpus.Outcome{Exit: strings.Join(trace, "; "), Regs: r, Data: append([]byte(nil), win...)}, nil
}
