package pagereport

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

const features uint64 = FeatureVersion1 | FeaturePageReporting

func TestIdentification(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{})
	for _, c := range []struct {
		off  uint64
		want uint32
	}{{RegMagic, MagicValue}, {RegVersion, Version}, {RegDeviceID, DeviceID}, {RegVendorID, VendorID}, {RegConfigGeneration, 0}} {
		if got := h.read(c.off); got != c.want {
			t.Errorf("register %#x = %#x, want %#x", c.off, got, c.want)
		}
	}
	h.write(RegDeviceFeaturesSel, 0)
	lo := h.read(RegDeviceFeatures)
	h.write(RegDeviceFeaturesSel, 1)
	hi := h.read(RegDeviceFeatures)
	if got := uint64(hi)<<32 | uint64(lo); got != Offered {
		t.Errorf("device features %#x, want %#x", got, uint64(Offered))
	}
	h.write(RegQueueSel, ReportingQueue)
	if n := h.read(RegQueueNumMax); n != 0 {
		t.Errorf("reporting queue offered (max %d) before the feature was negotiated", n)
	}
	if !h.setup(features, 32, 0) {
		t.Fatalf("setup refused: %+v", h.d.Stats())
	}
	for q := uint32(0); q < 6; q++ {
		h.write(RegQueueSel, q)
		want := uint32(0)
		if q == ReportingQueue {
			want = DefaultQueueSize
		}
		if got := h.read(RegQueueNumMax); got != want {
			t.Errorf("queue %d QueueNumMax %d, want %d", q, got, want)
		}
	}
}

func TestTransportQueueIndex(t *testing.T) {
	const stats, hint = 1 << 1, 1 << 3
	cases := []struct {
		features uint64
		want     int
	}{
		{FeaturePageReporting, 2},
		{FeaturePageReporting | stats, 3},
		{FeaturePageReporting | hint, 3}, // the virtio-ccw bug: not 4
		{FeaturePageReporting | stats | hint, SpecReportingQueue},
		{stats | hint, -1},
	}
	for _, c := range cases {
		if got := TransportQueueIndex(SpecReportingQueue, c.features); got != c.want {
			t.Errorf("features %#x: reporting queue at %d, want %d", c.features, got, c.want)
		}
	}
	if TransportQueueIndex(SpecReportingQueue, Offered) != ReportingQueue {
		t.Error("ReportingQueue disagrees with the offered features")
	}
}

func TestFeatureNegotiation(t *testing.T) {
	cases := []struct {
		name     string
		features uint64
		ok       bool
	}{
		{"reporting", features, true},
		{"reporting and poison", features | FeaturePagePoison, true},
		{"without VERSION_1", FeaturePageReporting, false},
		{"a feature not offered", features | 1<<3, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := newDriver(t, newFakeVM(t, hv.Anonymous), Config{})
			if got := h.setup(c.features, 32, 0); got != c.ok {
				t.Fatalf("setup = %v, want %v (status %#x)", got, c.ok, h.read(RegStatus))
			}
		})
	}
}

// TestDiscard: reported ranges read back zero and stop being resident;
// nothing else changes; each element completes once with used length 0.
func TestDiscard(t *testing.T) {
	for _, backing := range []hv.Backing{hv.Anonymous, hv.Memfd, hv.AnonymousTHP} {
		t.Run(backing.String(), func(t *testing.T) {
			vm := newFakeVM(t, backing)
			h := newDriver(t, vm, Config{})
			if !h.setup(features, 32, 0) {
				t.Fatal("setup refused")
			}
			h1 := h.post(Desc{Addr: ramGPA, Len: 2 << 20}, Desc{Addr: ramGPA + 4<<20, Len: hv.PageSize})
			h2 := h.post(Desc{Addr: ramGPA + 6<<20, Len: 3 * hv.PageSize})
			if got := h.usedIdx(); got != 2 {
				t.Fatalf("used idx %d, want 2", got)
			}
			for i, want := range []uint16{h1, h2} {
				id, n := h.usedElem(uint16(i))
				if id != uint32(want) || n != 0 {
					t.Errorf("used[%d] = {id %d len %d}, want {%d 0}", i, id, n, want)
				}
			}
			res, err := vm.slots[ramSlot].Memory.Resident(0, ramSize)
			if err != nil {
				t.Fatal(err)
			}
			var gone []int
			for p, r := range res {
				if !r {
					gone = append(gone, p)
				}
			}
			var want []int
			for p := 0; p < 512; p++ {
				want = append(want, p)
			}
			want = append(want, 1024, 1536, 1537, 1538)
			if !slices.Equal(gone, want) {
				t.Errorf("pages not resident: %v, want %v", gone, want)
			}
			if got := changed(vm.ram()); !slices.Equal(got, want) {
				t.Errorf("pages changed: %v, want %v", got, want)
			}
			for _, p := range want {
				if b := vm.ram()[p*hv.PageSize : (p+1)*hv.PageSize]; strings.Trim(string(b), "\x00") != "" {
					t.Fatalf("page %d does not read zero", p)
				}
			}
			s := h.d.Stats()
			if s.Elements != 2 || s.Ranges != 3 || s.BytesDiscarded != 2<<20+4*hv.PageSize || len(s.Ignored) != 0 || s.NeedsReset != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
}

// TestIgnoredRanges: every range the contract ignores is acknowledged,
// counted with its reason, and discards nothing.
func TestIgnoredRanges(t *testing.T) {
	cases := []struct {
		r    Desc
		want Reason
	}{
		{Desc{Addr: ramGPA + 1, Len: hv.PageSize}, ReasonUnaligned},
		{Desc{Addr: ramGPA, Len: hv.PageSize + 512}, ReasonUnaligned},
		{Desc{Addr: ramGPA, Len: 0}, ReasonEmpty},
		{Desc{Addr: ^uint64(0) &^ (hv.PageSize - 1), Len: 2 * hv.PageSize}, ReasonWraps},
		{Desc{Addr: holeGPA, Len: hv.PageSize}, ReasonOutsideRAM},
		{Desc{Addr: 1 << 50, Len: 2 << 20}, ReasonOutsideRAM},
		{Desc{Addr: ramGPA + ramSize - hv.PageSize, Len: 2 * hv.PageSize}, ReasonCrossesSlot},
		{Desc{Addr: ramGPA, Len: ramSize + romSize + hv.PageSize}, ReasonCrossesSlot},
		{Desc{Addr: romGPA, Len: hv.PageSize}, ReasonReadOnly},
		{Desc{Addr: ramGPA, Len: hv.PageSize}, ""}, // control: discarded
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%#x+%#x", c.r.Addr, c.r.Len), func(t *testing.T) {
			vm := newFakeVM(t, hv.Anonymous)
			h := newDriver(t, vm, Config{})
			if !h.setup(features, 32, 0) {
				t.Fatal("setup refused")
			}
			h.post(c.r)
			s := h.d.Stats()
			if h.usedIdx() != 1 || s.Elements != 1 || s.NeedsReset != 0 {
				t.Fatalf("not acknowledged: used idx %d, stats %+v", h.usedIdx(), s)
			}
			if c.want == "" {
				if s.BytesDiscarded != hv.PageSize {
					t.Fatalf("control range not discarded: %+v", s)
				}
				return
			}
			if s.Ignored[c.want] != 1 || s.BytesDiscarded != 0 {
				t.Errorf("stats %+v, want one range ignored as %q", s, c.want)
			}
			if p := changed(vm.ram()); len(p) != 0 {
				t.Errorf("RAM pages changed: %v", p)
			}
			if p := changed(vm.slots[romSlot].Bytes()); len(p) != 0 {
				t.Errorf("read-only pages changed: %v", p)
			}
		})
	}
}

func TestDeviceReadableBufferIgnored(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{})
	if !h.setup(features, 32, 0) {
		t.Fatal("setup refused")
	}
	h.writeDesc(0, Desc{Addr: ramGPA, Len: hv.PageSize}) // no DescFWrite
	h.publish(0)
	if s := h.d.Stats(); h.usedIdx() != 1 || s.Ignored[ReasonDeviceReadable] != 1 || len(changed(vm.ram())) != 0 {
		t.Fatalf("used idx %d, stats %+v", h.usedIdx(), s)
	}
}

// TestBrokenQueue: structural errors in guest-written ring data set
// DEVICE_NEEDS_RESET; nothing is completed or discarded and later
// notifications are ignored until the driver resets the device.
func TestBrokenQueue(t *testing.T) {
	page := Desc{Addr: ramGPA, Len: hv.PageSize, Flags: DescFWrite}
	cases := []struct {
		name   string
		break_ func(h *hostDriver)
		want   string
	}{
		{"head out of the table", func(h *hostDriver) { h.writeDesc(0, page); h.publish(32) }, "names descriptor 32"},
		{"head far out of the table", func(h *hostDriver) { h.writeDesc(0, page); h.publish(0xffff) }, "names descriptor 65535"},
		{"next out of the table", func(h *hostDriver) {
			h.writeDesc(0, Desc{Addr: ramGPA, Len: hv.PageSize, Flags: DescFWrite | DescFNext, Next: 40})
			h.publish(0)
		}, "chains to 40"},
		{"chain loops", func(h *hostDriver) {
			h.writeDesc(0, Desc{Addr: ramGPA, Len: hv.PageSize, Flags: DescFWrite | DescFNext, Next: 1})
			h.writeDesc(1, Desc{Addr: ramGPA + hv.PageSize, Len: hv.PageSize, Flags: DescFWrite | DescFNext, Next: 0})
			h.publish(0)
		}, "a loop"},
		{"self loop", func(h *hostDriver) {
			h.writeDesc(5, Desc{Addr: ramGPA, Len: hv.PageSize, Flags: DescFWrite | DescFNext, Next: 5})
			h.publish(5)
		}, "a loop"},
		{"indirect descriptor", func(h *hostDriver) {
			h.writeDesc(0, Desc{Addr: ramGPA, Len: 16, Flags: DescFIndirect})
			h.publish(0)
		}, "indirect"},
		{"avail idx too far ahead", func(h *hostDriver) {
			h.writeDesc(0, page)
			h.setAvailIdx(33)
			h.write(RegQueueNotify, ReportingQueue)
		}, "more than the 32 entries"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vm := newFakeVM(t, hv.Anonymous)
			h := newDriver(t, vm, Config{MSI: &MSI{Addr: hv.MSIAddrBase, Data: 0x40}})
			if !h.setup(features, 32, 0) {
				t.Fatal("setup refused")
			}
			c.break_(h)
			s := h.d.Stats()
			if h.read(RegStatus)&StatusNeedsReset == 0 || s.NeedsReset != 1 || !strings.Contains(s.LastNeedsReset, c.want) {
				t.Fatalf("status %#x, stats %+v: want NEEDS_RESET for %q", h.read(RegStatus), s, c.want)
			}
			if h.read(RegInterruptStatus)&InterruptConfigChange == 0 || vm.msis != 1 {
				t.Errorf("no config-change interrupt (isr %#x, msis %d)", h.read(RegInterruptStatus), vm.msis)
			}
			if h.read(RegQueueReady) != 0 {
				t.Error("queue still ready")
			}
			if h.usedIdx() != 0 || s.Elements != 0 || len(changed(vm.ram())) != 0 {
				t.Fatalf("a broken element was acted on: used idx %d, stats %+v", h.usedIdx(), s)
			}
			h.write(RegStatus, h.read(RegStatus)&^StatusNeedsReset) // the driver cannot clear it
			h.write(RegQueueNotify, ReportingQueue)
			if h.read(RegStatus)&StatusNeedsReset == 0 || h.d.Stats().Elements != 0 {
				t.Fatal("device resumed without a reset")
			}
			// A reset and a fresh setup work again.
			if !h.setup(features, 32, 0) {
				t.Fatal("setup after reset refused")
			}
			h.post(Desc{Addr: ramGPA, Len: hv.PageSize})
			if h.usedIdx() != 1 || h.d.Stats().BytesDiscarded != hv.PageSize {
				t.Fatalf("after reset: used idx %d, stats %+v", h.usedIdx(), h.d.Stats())
			}
		})
	}
}

// TestQueueRefused: a queue the device cannot use is refused at enable.
func TestQueueRefused(t *testing.T) {
	cases := []struct {
		name              string
		size              uint32
		desc, avail, used uint64
		want              string
	}{
		{"smaller than 32", 16, descGPA, availGPA, usedGPA, "below 32"},
		{"not a power of two", 48, descGPA, availGPA, usedGPA, "not a power of two"},
		{"zero", 0, descGPA, availGPA, usedGPA, "not a power of two"},
		{"above the maximum", 256, descGPA, availGPA, usedGPA, "above QueueNumMax"},
		{"misaligned table", 32, descGPA + 8, availGPA, usedGPA, "not aligned"},
		{"misaligned used ring", 32, descGPA, availGPA, usedGPA + 2, "not aligned"},
		{"wrapping table", 32, ^uint64(0) &^ 15, availGPA, usedGPA, "wraps"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vm := newFakeVM(t, hv.Anonymous)
			h := newDriver(t, vm, Config{})
			h.negotiate(features)
			h.write(RegQueueSel, ReportingQueue)
			h.write(RegQueueNum, c.size)
			h.write(RegQueueDescLow, uint32(c.desc))
			h.write(RegQueueDescHigh, uint32(c.desc>>32))
			h.write(RegQueueDriverLow, uint32(c.avail))
			h.write(RegQueueDeviceLow, uint32(c.used))
			h.write(RegQueueReady, 1)
			s := h.d.Stats()
			if h.read(RegQueueReady) != 0 || h.read(RegStatus)&StatusNeedsReset == 0 || !strings.Contains(s.LastNeedsReset, c.want) {
				t.Fatalf("ready %d status %#x stats %+v, want refusal %q", h.read(RegQueueReady), h.read(RegStatus), s, c.want)
			}
		})
	}
}

func TestUnbackedRings(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{})
	h.negotiate(features)
	h.write(RegQueueSel, ReportingQueue)
	h.write(RegQueueNum, 32)
	h.write(RegQueueDescLow, holeGPA)
	h.write(RegQueueDriverLow, holeGPA+0x1000)
	h.write(RegQueueDeviceLow, romGPA) // read-only: the device cannot complete
	h.write(RegQueueReady, 1)
	h.write(RegStatus, StatusAcknowledge|StatusDriver|StatusFeaturesOK|StatusDriverOK)
	h.write(RegQueueNotify, ReportingQueue)
	if s := h.d.Stats(); h.read(RegStatus)&StatusNeedsReset == 0 || !strings.Contains(s.LastNeedsReset, "avail") {
		t.Fatalf("status %#x stats %+v", h.read(RegStatus), s)
	}
}

// TestRegisterAbuse: wrong widths, unknown offsets and writes at the wrong
// time are counted, never errors.
func TestRegisterAbuse(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{})
	for _, a := range []hv.Access{
		{Offset: RegMagic, Data: make([]byte, 2)},
		{Offset: RegMagic + 1, Data: make([]byte, 4)},
		{Offset: 0xf0, Data: make([]byte, 4)},
		{Offset: 0xf0, Data: make([]byte, 4), Write: true},
		{Offset: RegConfig + configSize, Data: make([]byte, 4)},
		{Offset: RegConfig + 2, Data: make([]byte, 4)},
		{Offset: RegStatus, Data: make([]byte, 8), Write: true},
		{Offset: RegQueueNotify, Data: []byte{0, 0, 0, 0}, Write: true}, // queue 0: no such queue
		{Offset: RegQueueNum, Data: []byte{32, 0, 0, 0}, Write: true},   // before features
	} {
		a := a
		if err := h.d.Access(&a); err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		if !a.Write && strings.Trim(string(a.Data), "\x00") != "" {
			t.Errorf("%+v read non-zero", a)
		}
	}
	if s := h.d.Stats(); s.BadAccesses != 9 || s.Notifies != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestInhibit(t *testing.T) {
	vm := newFakeVM(t, hv.Memfd)
	h := newDriver(t, vm, Config{Inhibit: true})
	if !h.setup(features, 32, 0) {
		t.Fatal("setup refused")
	}
	h.post(Desc{Addr: ramGPA, Len: 2 << 20})
	if s := h.d.Stats(); h.usedIdx() != 1 || s.BytesInhibited != 2<<20 || s.BytesDiscarded != 0 || len(changed(vm.ram())) != 0 {
		t.Fatalf("used idx %d, stats %+v", h.usedIdx(), s)
	}
	h.d.SetInhibit(false)
	h.post(Desc{Addr: ramGPA, Len: 2 << 20})
	if s := h.d.Stats(); s.BytesDiscarded != 2<<20 || len(changed(vm.ram())) != 512 {
		t.Fatalf("after un-inhibit: stats %+v", s)
	}
}

func TestPoison(t *testing.T) {
	cases := []struct {
		name     string
		features uint64
		poison   uint32
		want     byte // what reported pages hold afterwards
	}{
		{"poison negotiated", features | FeaturePagePoison, 0xaaaaaaaa, 0xaa},
		{"poison value zero discards", features | FeaturePagePoison, 0, 0},
		{"poison value without the feature discards", features, 0xaaaaaaaa, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			vm := newFakeVM(t, hv.Anonymous)
			h := newDriver(t, vm, Config{})
			if !h.setup(c.features, 32, c.poison) {
				t.Fatal("setup refused")
			}
			h.post(Desc{Addr: ramGPA + hv.PageSize, Len: 2 * hv.PageSize})
			if got := h.read(RegConfig + ConfigPoisonVal); got != c.poison {
				t.Errorf("poison_val reads %#x", got)
			}
			for p, b := range vm.ram()[:4*hv.PageSize] {
				want := byte(pattern)
				if p >= hv.PageSize && p < 3*hv.PageSize {
					want = c.want
				}
				if b != want {
					t.Fatalf("byte %#x = %#x, want %#x", p, b, want)
				}
			}
			// poison_val is fixed after DRIVER_OK.
			h.write(RegConfig+ConfigPoisonVal, 0x55)
			if got := h.read(RegConfig + ConfigPoisonVal); got != c.poison {
				t.Errorf("poison_val changed after DRIVER_OK: %#x", got)
			}
		})
	}
}

// TestResetInFlight: a reset while an element is being processed waits
// for it, so it completes exactly once, and the element the device had not
// taken is never completed into the queue the driver sets up afterwards.
func TestResetInFlight(t *testing.T) {
	for _, c := range []struct {
		name  string
		reset func(h *hostDriver)
	}{
		{"host reset (hv.VM.ResetDevices)", func(h *hostDriver) { h.d.Reset() }},
		{"driver reset (status 0, as on unbind)", func(h *hostDriver) { h.write(RegStatus, 0) }},
	} {
		t.Run(c.name, func(t *testing.T) { testResetInFlight(t, c.reset) })
	}
}

func testResetInFlight(t *testing.T, reset func(h *hostDriver)) {
	vm := newFakeVM(t, hv.Anonymous)
	entered := make(chan uint16, 4)
	release := make(chan struct{})
	h := newDriver(t, vm, Config{Async: true, BeforeComplete: func(head uint16) {
		entered <- head
		<-release
	}})
	if !h.setup(features, 32, 0) {
		t.Fatal("setup refused")
	}
	first := h.post(Desc{Addr: ramGPA, Len: hv.PageSize})
	h.post(Desc{Addr: ramGPA + hv.PageSize, Len: hv.PageSize}) // queued behind it
	if got := <-entered; got != first {
		t.Fatalf("in flight: head %d, want %d", got, first)
	}
	resetDone := make(chan struct{})
	go func() { reset(h); close(resetDone) }()
	select {
	case <-resetDone:
		t.Fatal("reset did not wait for the element in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-resetDone
	if got := h.usedIdx(); got != 1 {
		t.Fatalf("used idx %d after reset, want exactly the element in flight", got)
	}
	s := h.d.Stats()
	// Two resets: the driver's status write of 0 in setup, and this one.
	if s.Elements != 1 || s.BytesDiscarded != hv.PageSize || s.Resets != 2 {
		t.Fatalf("stats %+v", s)
	}
	if h.read(RegStatus) != 0 || h.read(RegQueueReady) != 0 {
		t.Fatal("not reset")
	}
	// The new queue starts empty: nothing of the old one lands in it.
	entered2 := len(entered)
	if !h.setup(features, 32, 0) {
		t.Fatal("setup after reset refused")
	}
	h.post(Desc{Addr: ramGPA + 2*hv.PageSize, Len: hv.PageSize})
	deadline := time.Now().Add(5 * time.Second)
	for h.usedIdx() != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if h.usedIdx() != 1 || len(entered) != entered2+1 {
		t.Fatalf("new queue: used idx %d, %d elements processed", h.usedIdx(), len(entered)-entered2)
	}
	if id, _ := h.usedElem(0); id != 0 {
		t.Fatalf("new queue completed head %d", id)
	}
	if s := h.d.Stats(); s.Elements != 2 || s.BytesDiscarded != 2*hv.PageSize {
		t.Fatalf("stats %+v", s)
	}
}

func TestUsedInterrupt(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{MSI: &MSI{Addr: hv.MSIAddrBase, Data: 0x41}})
	if !h.setup(features, 32, 0) {
		t.Fatal("setup refused")
	}
	h.post(Desc{Addr: ramGPA, Len: hv.PageSize})
	if h.read(RegInterruptStatus) != InterruptUsedBuffer || vm.msis != 1 {
		t.Fatalf("isr %#x msis %d", h.read(RegInterruptStatus), vm.msis)
	}
	h.write(RegInterruptACK, InterruptUsedBuffer)
	if h.read(RegInterruptStatus) != 0 {
		t.Fatal("ack did not clear")
	}
	// VIRTQ_AVAIL_F_NO_INTERRUPT suppresses it.
	if err := vm.Store32(availGPA, uint32(h.avail)<<16|AvailFNoInterrupt); err != nil {
		t.Fatal(err)
	}
	h.post(Desc{Addr: ramGPA, Len: hv.PageSize})
	if h.read(RegInterruptStatus) != 0 || vm.msis != 1 {
		t.Fatalf("suppressed interrupt raised: isr %#x msis %d", h.read(RegInterruptStatus), vm.msis)
	}
}

func TestWrappingIndices(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	h := newDriver(t, vm, Config{})
	if !h.setup(features, 32, 0) {
		t.Fatal("setup refused")
	}
	// 70000 elements take both u16 indices around.
	for i := 0; i < 70000; i++ {
		h.post(Desc{Addr: ramGPA + uint64(i%2048)*hv.PageSize, Len: hv.PageSize})
	}
	if s := h.d.Stats(); s.Elements != 70000 || h.usedIdx() != 70000%65536 || s.NeedsReset != 0 {
		t.Fatalf("used idx %d stats %+v", h.usedIdx(), s)
	}
}

func TestNewRefusesBadQueueSize(t *testing.T) {
	vm := newFakeVM(t, hv.Anonymous)
	for _, n := range []int{16, 33, 65536} {
		if _, err := New(vm, Config{QueueSize: n}); err == nil {
			t.Errorf("queue size %d accepted", n)
		}
	}
}
