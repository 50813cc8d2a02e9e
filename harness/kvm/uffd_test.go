package kvm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// uffdDataGPA is where the tests put the demand-paged slot: inside the raw
// guest's identity-mapped first GiB, far from slot 0.
const uffdDataGPA = 0x20000000

// openFds counts this process's open descriptors.
func openFds(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// checkNoLeak records the descriptor and goroutine counts and, when the
// test ends, fails it if either grew (readers stop within a poll period
// after a VM closes under them, so allow that long).
func checkNoLeak(tb testing.TB) {
	tb.Helper()
	fds, gs := openFds(tb), runtime.NumGoroutine()
	tb.Cleanup(func() {
		deadline := time.Now().Add(2 * readerPollMillis * time.Millisecond * 5)
		for {
			f, g := openFds(tb), runtime.NumGoroutine()
			if f <= fds && g <= gs {
				return
			}
			if time.Now().After(deadline) {
				tb.Errorf("leak: %d descriptors before, %d after; %d goroutines before, %d after", fds, f, gs, g)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func requireUserfault(tb testing.TB, h *Hypervisor) {
	tb.Helper()
	if err := h.Caps().Require(hv.CapUserfault); err != nil {
		tb.Skip(err)
	}
}

// touchProgram reads (or writes) the first quadword of n pages from
// uffdDataGPA, sums what it read into RDX, and exits with `out 0x10`;
// run again, it repeats the pass.
func touchProgram(tb testing.TB, n int, write bool) []byte {
	tb.Helper()
	a := asm.New(rawCodeGPA)
	start := a.Here()
	a.Mov(asm.RBX, asm.Imm(uffdDataGPA))
	a.Mov(asm.RCX, asm.Imm(int64(n)))
	a.Xor(asm.EDX, asm.EDX)
	loop := a.Here()
	if write {
		a.Mov(asm.Q(asm.RBX, 8), asm.RCX)
	}
	a.Add(asm.RDX, asm.Q(asm.RBX, 0))
	a.Add(asm.RBX, asm.Imm(hv.PageSize))
	a.Dec(asm.RCX)
	a.Jcc(asm.CondNE, loop)
	a.Out(asm.Imm(0x10), asm.AL)
	a.Jmp(start)
	code, err := a.Assemble()
	if err != nil {
		tb.Fatal(err)
	}
	return code
}

// uffdGuest is a raw guest with a second, empty slot at uffdDataGPA.
type uffdGuest struct {
	*rawGuest
	data *hv.Memory
	slot hv.Memslot
}

func newUffdGuest(tb testing.TB, h *Hypervisor, pages int, backing hv.Backing, code []byte) *uffdGuest {
	tb.Helper()
	g := newRawGuest(tb, h, hv.VMConfig{}, code)
	data, err := hv.NewMemory(uint64(pages)*hv.PageSize, backing)
	if err != nil {
		tb.Fatal(err)
	}
	// Cleanups run last-in first-out: the VM (registered by newRawGuest)
	// is closed before this memory is unmapped.
	tb.Cleanup(func() { data.Close() })
	m := hv.Memslot{Slot: 1, GPA: uffdDataGPA, Size: data.Size(), Memory: data}
	if err := g.vm.SetMemslot(m); err != nil {
		tb.Fatal(err)
	}
	return &uffdGuest{rawGuest: g, data: data, slot: m}
}

// pass runs the guest to its `out` and returns the sum it computed.
func (g *uffdGuest) pass(tb testing.TB) uint64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e, err := g.vcpu.Run(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	if io, ok := e.(*hv.IOExit); !ok || io.Port != 0x10 {
		tb.Fatalf("exit %v, want out 0x10", e)
	}
	r, err := g.vcpu.Regs()
	if err != nil {
		tb.Fatal(err)
	}
	return r.RDX
}

// pattern is what the tests' handlers put in the first quadword of a page.
func pattern(gpa uint64) uint64 { return gpa ^ 0x5a5a_0000_0000_0000 }

// faultLog is a handler that fills each page with pattern(gpa) and
// remembers what it was called with.
type faultLog struct {
	mu     sync.Mutex
	faults []hv.Fault
}

func (l *faultLog) handle(f hv.Fault, page []byte) error {
	if len(page) != hv.PageSize {
		return fmt.Errorf("page of %d bytes", len(page))
	}
	for i, b := range page {
		if b != 0 {
			return fmt.Errorf("page byte %d is %#x, want a zeroed page", i, b)
		}
	}
	binary.LittleEndian.PutUint64(page, pattern(f.GPA))
	l.mu.Lock()
	l.faults = append(l.faults, f)
	l.mu.Unlock()
	return nil
}

func (l *faultLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.faults)
}

func TestMissingPageHandlerFirstTouch(t *testing.T) {
	h := openOrSkip(t)
	requireUserfault(t, h)
	for _, backing := range []hv.Backing{hv.Anonymous, hv.Memfd, hv.AnonymousTHP} {
		for _, write := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/write=%v", backing, write), func(t *testing.T) {
				checkNoLeak(t)
				const n = 48
				g := newUffdGuest(t, h, n, backing, touchProgram(t, n, write))
				var log faultLog
				if err := g.vm.SetMissingPageHandler(1, log.handle); err != nil {
					t.Fatal(err)
				}
				want := uint64(0)
				for i := uint64(0); i < n; i++ {
					want += pattern(uffdDataGPA + i*hv.PageSize)
				}
				if got := g.pass(t); got != want {
					t.Errorf("first pass sum %#x, want %#x (the handler's contents)", got, want)
				}
				if c := log.count(); c != n || g.vm.MissingPageFaults() != n {
					t.Fatalf("first pass: %d handler calls, %d counted faults, want %d", c, g.vm.MissingPageFaults(), n)
				}
				if v, ok := g.vm.userfaultStats().Get("missing_page_faults"); !ok || v != n {
					t.Errorf("missing_page_faults stat %d (present %v), want %d", v, ok, n)
				}
				seen := map[uint64]bool{}
				for _, f := range log.faults {
					if f.Slot != 1 || f.GPA%hv.PageSize != 0 || f.GPA < uffdDataGPA || f.GPA >= uffdDataGPA+n*hv.PageSize || seen[f.GPA] {
						t.Errorf("fault %+v: wrong slot, unaligned, outside the slot or repeated", f)
					}
					seen[f.GPA] = true
					if f.Write != write {
						t.Errorf("fault %+v: Write = %v, the guest's first access was a %s", f, f.Write, map[bool]string{false: "read", true: "write"}[write])
					}
				}
				if got := g.pass(t); got != want {
					t.Errorf("second pass sum %#x, want %#x", got, want)
				}
				if c := log.count(); c != n {
					t.Errorf("second pass: %d handler calls in all, want still %d", c, n)
				}
				if write {
					// The guest's writes landed on the installed pages.
					b := g.data.Bytes()
					for i := 0; i < n; i++ {
						if v := binary.LittleEndian.Uint64(b[i*hv.PageSize+8:]); v != uint64(n-i) {
							t.Fatalf("page %d: guest wrote %d, host reads %d", i, n-i, v)
						}
					}
				}
				if err := g.vm.SetMissingPageHandler(1, nil); err != nil {
					t.Errorf("removal: %v", err)
				}
			})
		}
	}
}

func TestMissingPageHandlerRefaultsPunchedPages(t *testing.T) {
	h := openOrSkip(t)
	requireUserfault(t, h)
	for _, backing := range []hv.Backing{hv.Anonymous, hv.Memfd} {
		t.Run(backing.String(), func(t *testing.T) {
			checkNoLeak(t)
			const n = 8
			g := newUffdGuest(t, h, n, backing, touchProgram(t, n, false))
			var log faultLog
			if err := g.vm.SetMissingPageHandler(1, log.handle); err != nil {
				t.Fatal(err)
			}
			defer g.vm.SetMissingPageHandler(1, nil)
			g.pass(t)
			if err := g.data.PunchHole(2*hv.PageSize, 3*hv.PageSize); err != nil {
				t.Fatal(err)
			}
			g.pass(t)
			if c := log.count(); c != n+3 {
				t.Errorf("%d faults after punching 3 of %d touched pages, want %d", c, n, n+3)
			}
		})
	}
}

func TestMissingPageHandlerHostAccess(t *testing.T) {
	// The registration is on host memory: a host thread touching a missing
	// page is served like a vCPU.
	h := openOrSkip(t)
	requireUserfault(t, h)
	requireTwoPs(t)
	checkNoLeak(t)
	g := newUffdGuest(t, h, 4, hv.Anonymous, touchProgram(t, 4, false))
	var log faultLog
	if err := g.vm.SetMissingPageHandler(1, log.handle); err != nil {
		t.Fatal(err)
	}
	if v := binary.LittleEndian.Uint64(g.data.Bytes()[3*hv.PageSize:]); v != pattern(uffdDataGPA+3*hv.PageSize) {
		t.Errorf("host read %#x, want the handler's %#x", v, pattern(uffdDataGPA+3*hv.PageSize))
	}
	if log.count() != 1 {
		t.Errorf("%d faults, want 1", log.count())
	}
	if err := g.vm.SetMissingPageHandler(1, nil); err != nil {
		t.Error(err)
	}
}

func TestMissingPageHandlerErrors(t *testing.T) {
	h := openOrSkip(t)
	requireUserfault(t, h)
	checkNoLeak(t)
	g := newUffdGuest(t, h, 4, hv.Anonymous, touchProgram(t, 4, false))
	var log faultLog
	expect := func(what string, err error, target error, words string) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: no error", what)
			return
		}
		if target != nil && !errors.Is(err, target) {
			t.Errorf("%s: %v does not wrap %v", what, err, target)
		}
		if !strings.Contains(err.Error(), words) {
			t.Errorf("%s: %q does not say %q", what, err, words)
		}
	}
	expect("unknown slot", g.vm.SetMissingPageHandler(7, log.handle), unix.EINVAL, "no such slot")
	expect("removal without a handler", g.vm.SetMissingPageHandler(1, nil), unix.ENOENT, "has none")
	if err := g.vm.SetMissingPageHandler(1, log.handle); err != nil {
		t.Fatal(err)
	}
	expect("twice", g.vm.SetMissingPageHandler(1, log.handle), unix.EBUSY, "already has one")

	// A second VM on the same host pages: the kernel allows one
	// userfaultfd per range.
	vm2, err := h.CreateVM(hv.VMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm2.Close()
	alias := g.slot
	alias.Slot = 3
	if err := vm2.SetMemslot(alias); err != nil {
		t.Fatal(err)
	}
	expect("memory registered by another VM", vm2.SetMissingPageHandler(3, log.handle), unix.EBUSY, "already registered with another userfaultfd")
	if userfaultsOf(vm2) != nil {
		t.Error("a failed registration left state behind")
	}
	if err := g.vm.SetMissingPageHandler(1, nil); err != nil {
		t.Error(err)
	}
	expect("second removal", g.vm.SetMissingPageHandler(1, nil), unix.ENOENT, "has none")
	vm2.Close()
	expect("closed VM", vm2.SetMissingPageHandler(3, log.handle), unix.EBADF, "VM closed")
}

func TestMissingPageHandlerFailureDoesNotHang(t *testing.T) {
	h := openOrSkip(t)
	requireUserfault(t, h)
	for _, panics := range []bool{false, true} {
		t.Run(fmt.Sprintf("panic=%v", panics), func(t *testing.T) {
			checkNoLeak(t)
			const n = 4
			g := newUffdGuest(t, h, n, hv.Anonymous, touchProgram(t, n, false))
			boom := errors.New("backing store unavailable")
			var calls atomic.Int32
			err := g.vm.SetMissingPageHandler(1, func(f hv.Fault, page []byte) error {
				calls.Add(1)
				binary.LittleEndian.PutUint64(page, 0xbad) // must not reach the guest
				if f.GPA == uffdDataGPA+hv.PageSize {
					if panics {
						panic(boom)
					}
					return boom
				}
				binary.LittleEndian.PutUint64(page, pattern(f.GPA))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			// The failing page reads as zero; the others as the handler said.
			want := pattern(uffdDataGPA) + pattern(uffdDataGPA+2*hv.PageSize) + pattern(uffdDataGPA+3*hv.PageSize)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e, runErr := g.vcpu.Run(ctx)
			if runErr != nil {
				// With the run-loop hook (takeUserfaultErr) this Run
				// reports the error and the next one goes on.
				if !strings.Contains(runErr.Error(), fmt.Sprintf("gpa %#x", uffdDataGPA+hv.PageSize)) {
					t.Fatalf("Run = %v, want the failing gpa", runErr)
				}
				e, err = g.vcpu.Run(ctx)
				if err != nil {
					t.Fatalf("Run after the reported error: %v", err)
				}
			}
			if io, ok := e.(*hv.IOExit); !ok || io.Port != 0x10 {
				t.Fatalf("exit %v, want out 0x10", e)
			}
			r, err := g.vcpu.Regs()
			if err != nil {
				t.Fatal(err)
			}
			if r.RDX != want {
				t.Errorf("sum %#x, want %#x (failing page served as zeroes)", r.RDX, want)
			}
			if calls.Load() != n {
				t.Errorf("%d handler calls, want %d", calls.Load(), n)
			}
			if err := g.vm.MissingPageErr(); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("gpa %#x", uffdDataGPA+hv.PageSize)) {
				t.Errorf("MissingPageErr = %v, want the failing gpa", err)
			} else if !panics && !errors.Is(err, boom) {
				t.Errorf("MissingPageErr = %v, does not wrap the handler's error", err)
			}
			if runErr == nil {
				if err := g.vm.takeUserfaultErr(g.vcpu.tid); err == nil {
					t.Error("no error kept for the vCPU's next Run")
				}
			}
			if err := g.vm.takeUserfaultErr(g.vcpu.tid); err != nil {
				t.Errorf("the error is reported twice: %v", err)
			}
			if err := g.vm.SetMissingPageHandler(1, nil); err == nil || !strings.Contains(err.Error(), "backing store unavailable") {
				t.Errorf("removal returned %v, want the handler's error", err)
			}
		})
	}
}

func TestMissingPageHandlerClosedWithVM(t *testing.T) {
	// A VM closed with handlers still set frees their descriptors and
	// threads (checkNoLeak), whether or not a guest faulted.
	h := openOrSkip(t)
	requireUserfault(t, h)
	checkNoLeak(t)
	for i := 0; i < 3; i++ {
		g := newUffdGuest(t, h, 4, hv.Memfd, touchProgram(t, 4, true))
		var log faultLog
		if err := g.vm.SetMissingPageHandler(1, log.handle); err != nil {
			t.Fatal(err)
		}
		if i > 0 {
			g.pass(t)
		}
		g.vm.Close()
		if i != 1 {
			// What VM.Close is to call; without it (i == 1) the
			// readers notice the closed VM within a poll period.
			g.vm.closeUserfaults()
		}
	}
}

func TestUserfaultCapability(t *testing.T) {
	h := openOrSkip(t)
	s := h.Caps().Features[hv.CapUserfault]
	if s.Reason == "" {
		t.Fatalf("userfault capability without a reason: %+v", s)
	}
	t.Logf("userfault: ok=%v %s", s.OK, s.Reason)
	fd, via, err := openUserfaultfd()
	if (err == nil) != s.OK {
		t.Errorf("capability ok=%v but openUserfaultfd: %v", s.OK, err)
	}
	if err == nil {
		t.Logf("opened via %s", via)
		unix.Close(fd)
	}
}
