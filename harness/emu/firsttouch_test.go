package emu

import (
	"runtime"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// First touch of guest memory: a guest store to a page the host never
// touched must cost one host page fault, not a read fault that maps the
// zero page and a write fault that copies it (issue 16).

// freshGPA is where the untouched part of the first-touch guest starts:
// newTestGuest writes only below it.
const freshGPA = guestMem

// touchProgram stores into pages [freshGPA, freshGPA+pages*4K): at offset
// 0 (a data TLB miss, the slow path) and then at offset 8 (the fast path).
func touchProgram(tb testing.TB, pages int) []byte {
	return assemble(tb, func(a *asm.Assembler) {
		a.Mov(asm.ECX, asm.Imm(int64(pages)))
		a.Mov(asm.RDI, asm.Imm(freshGPA))
		l := a.Here()
		a.Mov(asm.Q(asm.RDI, 0), asm.RCX)
		a.Mov(asm.Q(asm.RDI, 8), asm.RCX)
		a.Add(asm.RDI, asm.Imm(hv.PageSize))
		a.Dec(asm.ECX)
		a.Jcc(asm.CondNZ, l)
		done(a)
	})
}

// threadFaults is the calling thread's minor and major page faults so far.
func threadFaults(tb testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		tb.Fatal(err)
	}
	return ru.Minflt + ru.Majflt
}

// touchFaults runs the touch program over pages fresh pages of the given
// backing and returns the host faults its run took per page, and the
// run's time. Run executes
// on the calling goroutine, locked here to its thread, so the thread's
// counters see the interpreter's faults and little else.
func touchFaults(tb testing.TB, backing hv.Backing, pages int) (float64, time.Duration) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	g := newTestGuest(tb, New(Options{}), guestOpt{memSize: guestMem + uint64(pages)*hv.PageSize, backing: backing}, touchProgram(tb, pages))
	before, start := threadFaults(tb), time.Now()
	r := g.runDone(tb)
	took, after := time.Since(start), threadFaults(tb)
	if r.RDI != freshGPA+uint64(pages)*hv.PageSize {
		tb.Fatalf("guest stopped at RDI %#x", r.RDI)
	}
	b := g.mem.Bytes()
	for p := 0; p < pages; p++ {
		if got, want := get64(b, freshGPA+uint64(p)*hv.PageSize+8), uint64(pages-p); got != want {
			tb.Fatalf("page %d holds %d, want %d", p, got, want)
		}
	}
	return float64(after-before) / float64(pages), took
}

func TestFirstTouchFaults(t *testing.T) {
	for _, backing := range []hv.Backing{hv.Anonymous, hv.Memfd} {
		t.Run(backing.String(), func(t *testing.T) {
			const pages = 2048
			got, _ := touchFaults(t, backing, pages)
			t.Logf("%s: %.3f host faults per first-touched page", backing, got)
			// At least one per page proves the count sees the touches;
			// well under two proves no read fault precedes the write.
			if got < 0.99 || got > 1.1 {
				t.Fatalf("%.3f host faults per first-touched page, want 1", got)
			}
		})
	}
}

// BenchmarkFirstTouch reports host faults per guest page written for the
// first time (faults/page, target 1.0) and the guest's time per page
// (the run only, not building the guest).
func BenchmarkFirstTouch(b *testing.B) {
	const pages = 4096
	var faults float64
	var took time.Duration
	for i := 0; i < b.N; i++ {
		f, d := touchFaults(b, hv.Anonymous, pages)
		faults, took = faults+f, took+d
	}
	b.ReportMetric(faults/float64(b.N), "faults/page")
	b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*pages), "run-ns/page")
}
