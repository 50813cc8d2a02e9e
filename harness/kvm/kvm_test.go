package kvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/hv/hvtest"
	"golang.org/x/sys/unix"
)

func TestOpenErrors(t *testing.T) {
	if archUnavailable != "" {
		t.Skipf("Open does not look for a device here: %s (TestOpenUnavailableOnThisArch)", archUnavailable)
	}
	dir := t.TempDir()
	noperm := filepath.Join(dir, "kvm-noperm")
	if err := os.WriteFile(noperm, nil, 0); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope"), "does not exist"},
		{"not a kvm device", "/dev/null", "KVM_GET_API_VERSION"},
	}
	if os.Geteuid() != 0 {
		cases = append(cases, struct{ name, path, want string }{"permission", noperm, "permission denied"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Open(Options{Device: c.path})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, hv.ErrUnavailable) {
				t.Errorf("error %v does not wrap ErrUnavailable", err)
			}
			if !contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && (s[:len(sub)] == sub || contains(s[1:], sub)))
}

func TestCaps(t *testing.T) {
	h := openAnyOrSkip(t)
	c := h.Caps()
	if c.Has(hv.CapLongMode) != (c.GuestArch() == hv.ArchX86_64) || c.MaxMemslots == 0 || c.MaxVCPUs == 0 {
		t.Fatalf("implausible caps for %s guests: %+v", c.GuestArch(), c)
	}
	for _, name := range c.Names() {
		s := c.Features[name]
		if !s.OK && s.Reason == "" {
			t.Errorf("capability %s is missing without a reason", name)
		}
		if err := c.Require(name); (err == nil) != s.OK {
			t.Errorf("Require(%s) = %v, but OK = %v", name, err, s.OK)
		} else if err != nil && !errors.Is(err, hv.ErrUnsupported) {
			t.Errorf("Require(%s) = %v, does not wrap ErrUnsupported", name, err)
		}
	}
}

// out 0x10, al with al=0x42; in al, 0x11; out 0x12, al; hlt
var pioProgram = []byte{0xb0, 0x42, 0xe6, 0x10, 0xe4, 0x11, 0xe6, 0x12, 0xf4}

func TestRunPIOAndHalt(t *testing.T) {
	h := openOrSkip(t)
	g := newRawGuest(t, h, hv.VMConfig{}, pioProgram)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []struct {
		kind  hv.ExitKind
		check func(hv.Exit) error
	}{
		{hv.ExitIO, func(e hv.Exit) error {
			io := e.(*hv.IOExit)
			if io.In || io.Port != 0x10 || io.Size != 1 || io.Value() != 0x42 {
				return errors.New(io.String())
			}
			return nil
		}},
		{hv.ExitIO, func(e hv.Exit) error {
			io := e.(*hv.IOExit)
			if !io.In || io.Port != 0x11 {
				return errors.New(io.String())
			}
			io.SetValue(0x99)
			return nil
		}},
		{hv.ExitIO, func(e hv.Exit) error {
			io := e.(*hv.IOExit)
			if io.Port != 0x12 || io.Value() != 0x99 {
				return errors.New("host-supplied IN value not seen by the guest: " + io.String())
			}
			return nil
		}},
		{hv.ExitHalt, func(hv.Exit) error { return nil }},
	}
	for i, s := range steps {
		e, err := g.vcpu.Run(ctx)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if e.Kind() != s.kind {
			t.Fatalf("step %d: exit %v, want %v", i, e, s.kind)
		}
		if err := s.check(e); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
}

func TestRunCancelsSpinningGuest(t *testing.T) {
	h := openOrSkip(t)
	g := newRawGuest(t, h, hv.VMConfig{}, []byte{0xeb, 0xfe}) // jmp .
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := g.vcpu.Run(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %v, want deadline exceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("stopping took %v", d)
	}
	// The vCPU is usable again with a fresh context: the stale kick is gone.
	if err := g.vcpu.SetRegs(&hv.Regs{RIP: rawCodeGPA + 0x10, RFLAGS: hv.FlagsFixed}); err != nil {
		t.Fatal(err)
	}
	copy(g.mem.Bytes()[rawCodeGPA+0x10:], []byte{0xf4})
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	e, err := g.vcpu.Run(ctx2)
	if err != nil || e.Kind() != hv.ExitHalt {
		t.Fatalf("rerun = %v, %v; want halt", e, err)
	}
}

func TestMMIOUnbacked(t *testing.T) {
	h := openOrSkip(t)
	// mov rax, 0x80000000; mov dword [rax], 0x1234; mov rbx, [rax]; out 0x10, al ; hlt
	code := []byte{
		0x48, 0xb8, 0, 0, 0, 0x80, 0, 0, 0, 0, // movabs rax, 0x80000000
		0xc7, 0x00, 0x34, 0x12, 0, 0, // mov dword [rax], 0x1234
		0x48, 0x8b, 0x18, // mov rbx, [rax]
		0xf4,
	}
	g := newRawGuest(t, h, hv.VMConfig{}, code)
	// Map 0x80000000 in the page tables: PDPT entry 2 -> a second PD.
	ctx := context.Background()
	b := g.mem.Bytes()
	putPTE(b, 0x2000+8*2, 0x4000|7)
	for i := uint64(0); i < 512; i++ {
		putPTE(b, int(0x4000+8*i), (2<<30+i<<21)|0x87)
	}
	e, err := g.vcpu.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := e.(*hv.MMIOExit)
	if !ok || !m.Write || m.GPA != 0x80000000 || m.Len != 4 || m.Value() != 0x1234 {
		t.Fatalf("exit %v, want mmio write of 0x1234 at 0x80000000", e)
	}
	e, err = g.vcpu.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, ok = e.(*hv.MMIOExit)
	if !ok || m.Write || m.Len != 8 {
		t.Fatalf("exit %v, want 8-byte mmio read", e)
	}
	m.SetValue(0xfeedfacecafebeef)
	if e, err = g.vcpu.Run(ctx); err != nil || e.Kind() != hv.ExitHalt {
		t.Fatalf("exit %v %v, want halt", e, err)
	}
	r, err := g.vcpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if r.RBX != 0xfeedfacecafebeef {
		t.Fatalf("rbx = %#x, want the host's MMIO read value", r.RBX)
	}
}

func putPTE(b []byte, off int, v uint64) {
	for i := 0; i < 8; i++ {
		b[off+i] = byte(v >> (8 * i))
	}
}

// TestMemslotErrors' table is x86 KVM's answers: arm64 KVM agrees on
// every case but a GPA beyond the VM's IPA size, which it refuses with
// EFAULT, not EINVAL (seen on 6.12).
func TestMemslotErrors(t *testing.T) { hvtest.MemslotErrors(t, openOrSkip(t)) }

func TestStats(t *testing.T) {
	h := openOrSkip(t)
	if !h.Caps().Has(hv.CapStats) {
		t.Skip("no binary stats")
	}
	g := newRawGuest(t, h, hv.VMConfig{}, pioProgram)
	if _, err := g.vcpu.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := g.vcpu.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.Get("exits"); !ok {
		t.Fatalf("vcpu stats have no 'exits': %v", st)
	}
	vst, err := g.vm.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if len(vst) == 0 {
		t.Fatal("no vm stats")
	}
}

func TestVCPUThreadsAreReleased(t *testing.T) {
	h := openOrSkip(t)
	before := h.VMCount()
	for i := 0; i < 5; i++ {
		g := newRawGuest(t, h, hv.VMConfig{}, []byte{0xf4})
		if _, err := g.vcpu.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
		g.vm.Close()
		g.mem.Close()
	}
	if h.VMCount() != before {
		t.Fatalf("VM count %d, want %d", h.VMCount(), before)
	}
	if _, err := (&VCPU{id: 9, done: closedChan()}).Regs(); !errors.Is(err, errClosed) {
		t.Fatalf("Regs on a closed vcpu = %v", err)
	}
}

func closedChan() chan struct{} { c := make(chan struct{}); close(c); return c }

// TestCallsStayOnTheVCPUThread: a call made from another goroutine while
// the vCPU thread is busy with a request must wait and run on the vCPU
// thread too (the cancellation kick signals that thread), never on the
// caller's.
func TestCallsStayOnTheVCPUThread(t *testing.T) {
	h := openOrSkip(t)
	g := newRawGuest(t, h, hv.VMConfig{}, []byte{0xf4})
	v := g.vcpu
	inside := make(chan struct{})
	release := make(chan struct{})
	go v.Do(func() error {
		close(inside)
		<-release
		return nil
	})
	<-inside
	tid := make(chan int, 1)
	go func() {
		_ = v.exec(func() error {
			tid <- unix.Gettid()
			return nil
		})
	}()
	time.Sleep(20 * time.Millisecond)
	close(release)
	if got := <-tid; got != v.tid {
		t.Fatalf("a concurrent call ran on thread %d, not the vCPU thread %d", got, v.tid)
	}
}

// TestErrorsReturnNilInterfaces: a failed NewVM or NewVCPU returns a nil
// interface, not a nil pointer inside one, so `vm != nil` checks hold.
func TestErrorsReturnNilInterfaces(t *testing.T) {
	h := openAnyOrSkip(t)
	vm, err := h.NewVM(hv.VMConfig{InitiallySet: true})
	if err == nil || vm != nil {
		t.Fatalf("NewVM with a bad config = %v, %v; want nil and an error", vm, err)
	}
	vm, err = h.NewVM(hv.VMConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	v, err := vm.NewVCPU(-1)
	if err == nil || v != nil {
		t.Fatalf("NewVCPU(-1) = %v, %v; want nil and an error", v, err)
	}
}

// TestHarvestWhileRunning: the ring is harvested from another goroutine
// while the vCPU is inside KVM_RUN, as the kernel's dirty_log_test does.
func TestHarvestWhileRunning(t *testing.T) {
	h := openOrSkip(t)
	if !h.Caps().Has(hv.CapDirtyRing) {
		t.Skip("no dirty ring")
	}
	// A guest that spins: the harvest must not wait for Run to return.
	g := newRawGuest(t, h, hv.VMConfig{DirtyRingBytes: 4096}, []byte{0xeb, 0xfe})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := g.vcpu.Run(ctx)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if _, err := g.vcpu.HarvestDirtyRing(func(uint32, uint64) {}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("harvest waited %v for the running vCPU", d)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run = %v, want canceled", err)
	}
	g.vm.Close()
	if _, err := g.vcpu.HarvestDirtyRing(func(uint32, uint64) {}); !errors.Is(err, errClosed) {
		t.Fatalf("harvest after close = %v, want closed", err)
	}
}
