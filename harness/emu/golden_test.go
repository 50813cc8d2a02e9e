package emu

import (
	"crypto/sha256"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/corpus"
)

var updateGolden = flag.Bool("update-engine-golden", false, "rewrite testdata/engine-golden.txt from this emulator")

const engineGolden = "testdata/engine-golden.txt"

// TestEngineGolden runs the curated corpus and seeded random programs
// (fixed seeds, both privilege levels) and compares every outcome - exit,
// all registers with the exact RFLAGS, undefined flags included, and the
// data window, hashed per program - with what the emulator produced before its execution
// engine was reworked for speed (issue 16). The emulator is deterministic,
// so any difference is a change of guest-visible behaviour.
func TestEngineGolden(t *testing.T) {
	var out strings.Builder
	full := map[string]string{} // outcomes by program, to show a difference
	for _, user := range []bool{true, false} {
		r := &diffRunner{g: newTestGuest(t, New(Options{}), guestOpt{user: user}, nil), name: "emu"}
		progs := corpus.Curated()
		rnd := rand.New(rand.NewSource(16))
		for i := 0; i < 150; i++ {
			progs = append(progs, corpus.Random(rnd, 24, fmt.Sprintf("random-%d", i), UndefinedFlags))
		}
		for _, p := range progs {
			prnd := rand.New(rand.NewSource(int64(len(p.Name))*7919 + 1))
			code := assemble(t, func(a *asm.Assembler) {
				p.Build(a)
				done(a)
			})
			var runs strings.Builder
			for i := 0; i < 6; i++ {
				regs := randRegs(prnd)
				if p.Fix != nil {
					p.Fix(&regs, prnd)
				}
				data := make([]byte, corpus.DataLen)
				prnd.Read(data)
				o := r.run(t, code, regs, data)
				fmt.Fprintf(&runs, "#%d: %s %v data %x\n", i, o.Exit, o.Regs, sha256.Sum256(o.Data))
			}
			full[p.Name] += runs.String()
			fmt.Fprintf(&out, "user=%v %s %x\n", user, p.Name, sha256.Sum256([]byte(runs.String())))
		}
	}
	got := out.String()
	if *updateGolden {
		if err := os.WriteFile(engineGolden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(engineGolden)
	if err != nil {
		t.Fatal(err)
	}
	gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
	if len(gl) != len(wl) {
		t.Fatalf("%d outcomes, golden file has %d", len(gl), len(wl))
	}
	bad := 0
	for i := range gl {
		if gl[i] != wl[i] {
			name, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(gl[i], "user=true "), "user=false "), " ")
			t.Errorf("outcomes differ from the golden file: %s\n%s", gl[i], full[name])
			if bad++; bad == 10 {
				t.Fatal("more differences not shown")
			}
		}
	}
}
