package hv

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestCapsRequire(t *testing.T) {
	var c Caps
	c.Backend = "test"
	c.Set(CapDirtyRing, true, 4096, "ring")
	c.Set(CapPMU, false, 0, "PMU disabled (kvm.enable_pmu=N)")
	cases := []struct {
		cap  Cap
		ok   bool
		want string
	}{
		{CapDirtyRing, true, ""},
		{CapPMU, false, "test: pmu unsupported: PMU disabled (kvm.enable_pmu=N)"},
		{CapGuestDebug, false, "test: guest-debug unsupported: not implemented by this backend"},
	}
	for _, tc := range cases {
		err := c.Require(tc.cap)
		if (err == nil) != tc.ok {
			t.Errorf("Require(%s) = %v", tc.cap, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrUnsupported) || err.Error() != tc.want {
				t.Errorf("Require(%s) = %q, want %q wrapping ErrUnsupported", tc.cap, err, tc.want)
			}
		}
	}
	if c.Value(CapDirtyRing) != 4096 || !c.Has(CapDirtyRing) || c.Has(CapPMU) {
		t.Error("Has/Value disagree with Set")
	}
	if names := c.Names(); len(names) != 2 || names[0] != CapDirtyRing {
		t.Errorf("Names() = %v", names)
	}
}

func TestUnavailableError(t *testing.T) {
	inner := errors.New("ENOENT")
	err := error(&UnavailableError{Backend: "kvm", Reason: "/dev/kvm does not exist", Err: inner})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, inner) || !strings.Contains(err.Error(), "/dev/kvm does not exist") {
		t.Fatalf("%v", err)
	}
}

type recDev struct {
	name            string
	got             []string
	fail            bool
	resets, closes  int
	block, released chan struct{}
}

func (d *recDev) Name() string { return d.name }
func (d *recDev) Reset() error { d.resets++; return nil }
func (d *recDev) Close() error { d.closes++; return nil }

func (d *recDev) Access(a *Access) error {
	if d.block != nil {
		d.block <- struct{}{}
		<-d.released
	}
	if d.fail {
		return errors.New("device says no")
	}
	d.got = append(d.got, fmt.Sprintf("r%d+%#x w=%v", a.Region, a.Offset, a.Write))
	if !a.Write {
		a.Data[0] = byte(a.Offset)
	}
	return nil
}

func TestBus(t *testing.T) {
	var b Bus
	d := &recDev{name: "rec"}
	if !b.Empty() {
		t.Fatal("new bus not empty")
	}
	if err := b.Attach(d, Region{SpaceMMIO, 0x1000, 0x100}, Region{SpacePIO, 0x60, 4}); err != nil {
		t.Fatal(err)
	}
	other := &recDev{name: "other"}
	bad := []struct {
		name string
		err  error
	}{
		{"mmio overlap", b.Attach(other, Region{SpaceMMIO, 0x10ff, 0x10})},
		{"mmio empty", b.Attach(other, Region{SpaceMMIO, 0x5000, 0})},
		{"mmio wrap", b.Attach(other, Region{SpaceMMIO, ^uint64(0) - 4, 0x10})},
		{"pio overlap", b.Attach(other, Region{SpacePIO, 0x63, 2})},
		{"pio beyond 0xffff", b.Attach(other, Region{SpacePIO, 0xffff, 2})},
		{"own regions overlap", b.Attach(other, Region{SpacePIO, 0x100, 4}, Region{SpacePIO, 0x102, 4})},
		{"no regions", b.Attach(other)},
		{"twice", b.Attach(d, Region{SpacePIO, 0x200, 1})},
		{"unknown space", b.Attach(other, Region{Space: 7, Base: 0x300, Size: 1})},
	}
	for _, c := range bad {
		if c.err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	// A PIO region and an MMIO region at the same numbers do not collide.
	if err := b.Attach(other, Region{SpacePIO, 0x1000, 0x10}); err != nil {
		t.Fatalf("pio at an mmio region's numbers: %v", err)
	}
	rd := &MMIOExit{GPA: 0x1010, Len: 1, Data: make([]byte, 1)}
	if h, err := b.Dispatch(0, rd); !h || err != nil || rd.Data[0] != 0x10 {
		t.Fatalf("mmio read dispatch: %v %v %v", h, err, rd.Data)
	}
	if h, _ := b.Dispatch(0, &MMIOExit{GPA: 0x2000, Len: 1, Data: make([]byte, 1)}); h {
		t.Fatal("unclaimed mmio was handled")
	}
	in := &IOExit{Port: 0x62, Size: 1, Count: 2, In: true, Data: make([]byte, 2)}
	if h, err := b.Dispatch(0, in); !h || err != nil || in.Data[0] != 2 || in.Data[1] != 2 {
		t.Fatalf("pio dispatch: %v %v %v", h, err, in.Data)
	}
	if h, _ := b.Dispatch(0, &HaltExit{}); h {
		t.Fatal("halt was handled")
	}
	if _, err := b.Dispatch(0, &MMIOExit{GPA: 0x10fc, Len: 8, Data: make([]byte, 8)}); err == nil {
		t.Fatal("an access past the region's end reached the device")
	}
	d.fail = true
	_, err := b.Dispatch(3, &MMIOExit{GPA: 0x1000, Len: 4, Write: true, Data: make([]byte, 4)})
	var de *DeviceError
	if !errors.As(err, &de) || de.Device != "rec" || !strings.Contains(err.Error(), "0x1000") {
		t.Fatalf("device error not reported with device and address: %v", err)
	}
	d.fail = false
	want := []string{"r0+0x10 w=false", "r1+0x2 w=false", "r1+0x2 w=false"}
	if fmt.Sprint(d.got) != fmt.Sprint(want) {
		t.Fatalf("accesses %q, want %q", d.got, want)
	}
	if err := b.Reset(); err != nil || d.resets != 1 || other.resets != 1 {
		t.Fatalf("reset: %v, %d %d", err, d.resets, other.resets)
	}
	if err := b.Detach(d); err != nil || d.closes != 1 {
		t.Fatalf("detach: %v, closes %d", err, d.closes)
	}
	if h, _ := b.Dispatch(0, &MMIOExit{GPA: 0x1010, Len: 1, Data: make([]byte, 1)}); h {
		t.Fatal("a detached device got an access")
	}
	if err := b.Detach(d); !errors.Is(err, ErrDetached) {
		t.Fatalf("second detach: %v", err)
	}
	if err := b.Close(); err != nil || other.closes != 1 || !b.Empty() {
		t.Fatalf("close: %v, closes %d", err, other.closes)
	}
	if err := b.Attach(d, Region{SpacePIO, 0x60, 1}); err == nil {
		t.Fatal("attach after close accepted")
	}
}

// Detach waits for an access in flight and closes the device after it.
func TestBusDetachWaitsForAccess(t *testing.T) {
	var b Bus
	d := &recDev{name: "slow", block: make(chan struct{}), released: make(chan struct{})}
	if err := b.Attach(d, Region{SpaceMMIO, 0x1000, 0x1000}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := b.Dispatch(0, &MMIOExit{GPA: 0x1000, Len: 4, Write: true, Data: make([]byte, 4)})
		done <- err
	}()
	<-d.block // the access is inside the device
	detached := make(chan error)
	go func() { detached <- b.Detach(d) }()
	select {
	case <-detached:
		t.Fatal("Detach returned while an access was in flight")
	case <-time.After(50 * time.Millisecond):
	}
	close(d.released)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := <-detached; err != nil || d.closes != 1 {
		t.Fatalf("detach: %v, closes %d", err, d.closes)
	}
}

func TestMemory(t *testing.T) {
	for _, backing := range []Backing{Anonymous, AnonymousTHP, Memfd} {
		t.Run(backing.String(), func(t *testing.T) {
			m, err := NewMemory(16*PageSize, backing)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			b := m.Bytes()
			for i := range b {
				b[i] = 0xaa
			}
			res, err := m.Resident(0, 16*PageSize)
			if err != nil || !res[3] {
				t.Fatalf("resident after write: %v %v", res, err)
			}
			if err := m.PunchHole(2*PageSize, 2*PageSize); err != nil {
				t.Fatal(err)
			}
			// Residency first: reading a hole faults a page back in.
			res, _ = m.Resident(0, 16*PageSize)
			if res[2] || res[3] || !res[4] {
				t.Fatalf("residency after the punch: %v", res)
			}
			if b[2*PageSize] != 0 || b[4*PageSize-1] != 0 || b[4*PageSize] != 0xaa || b[2*PageSize-1] != 0xaa {
				t.Fatal("punched range does not read zero, or neighbours changed")
			}
			for _, bad := range [][2]uint64{{1, PageSize}, {0, 0}, {15 * PageSize, 2 * PageSize}} {
				if err := m.PunchHole(bad[0], bad[1]); err == nil {
					t.Errorf("PunchHole(%#x, %#x) accepted", bad[0], bad[1])
				}
			}
		})
	}
	if _, err := NewMemory(100, Anonymous); err == nil {
		t.Error("unaligned size accepted")
	}
}

func TestExitValues(t *testing.T) {
	io := &IOExit{Size: 4, Count: 1, Data: make([]byte, 4)}
	io.SetValue(0x11223344)
	if io.Value() != 0x11223344 || io.Data[0] != 0x44 {
		t.Fatalf("io value %#x % x", io.Value(), io.Data)
	}
	m := &MMIOExit{Len: 2, Data: make([]byte, 2)}
	m.SetValue(0xabcdef)
	if m.Value() != 0xcdef {
		t.Fatalf("mmio value truncated wrongly: %#x", m.Value())
	}
	for k := ExitUnknown; k <= ExitSystemEvent; k++ {
		if strings.HasPrefix(k.String(), "exit(") {
			t.Errorf("exit kind %d has no name", k)
		}
	}
	var r Regs
	for i := 0; i < 16; i++ {
		r.SetGPR(i, uint64(i+1))
	}
	if r.RAX != 1 || r.RCX != 2 || r.RSP != 5 || r.R15 != 16 || r.GPR(7) != 8 {
		t.Fatalf("GPR numbering wrong: %v", r)
	}
}
