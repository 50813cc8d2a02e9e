// Package pagereport is a free-page-reporting device model with
// virtio-balloon semantics (VIRTIO_BALLOON_F_PAGE_REPORTING): the guest
// hands free guest-physical ranges to the device on a split virtqueue, as
// device-writable buffers, and the device gives their host memory back
// (madvise(MADV_DONTNEED) or fallocate hole punching on the slot's
// hv.Memory), so they read back as zero and stop being resident. Each
// element is completed with used length 0, as QEMU's
// virtio_balloon_handle_report does.
//
// The device attaches to any backend (hv.VM.Attach with one MMIO region of
// RegionSize bytes) and reaches guest memory only through hv.GuestMemory;
// regs.go documents the register block. Every value the guest writes is
// untrusted. Ranges that are unaligned, empty, wrapping, outside guest RAM,
// across a memslot boundary, in a read-only slot or device-readable are
// acknowledged and ignored (Stats.Ignored says why); a queue the driver
// broke (a descriptor index out of the table, a chain that loops, an
// indirect descriptor, an avail index too far ahead, rings in unbacked
// memory) or a queue refused at enable (size not a power of two or below
// 32, misaligned rings) sets DEVICE_NEEDS_RESET in the status register and
// raises a configuration-change interrupt. Neither is ever a host error.
//
// Modes: Inhibit completes elements and discards nothing (QEMU with an
// assigned VFIO device); with VIRTIO_BALLOON_F_PAGE_POISON negotiated and
// a non-zero poison_val, reported ranges are filled with the poison value
// instead of discarded (through hv.GuestMemory, so dirty logging sees it).
//
// driver.go holds the guest side: a reporter built as a guest program.
package pagereport

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// VM is what the device needs of the VM it is attached to; hv.VM has all of it.
type VM interface {
	hv.GuestMemory
	// Memslots maps guest-physical ranges to their host memory for discards.
	Memslots() []hv.Memslot
	// SignalMSI raises the device's interrupt when Config.MSI is set.
	SignalMSI(addr uint64, data uint32) error
}

// MSI is the message the device signals after completing elements or
// when it needs a reset.
type MSI struct {
	Addr uint64
	Data uint32
}

// Config shapes a device.
type Config struct {
	// Name defaults to "pagereport0".
	Name string
	// QueueSize is the reporting queue's QueueNumMax: a power of two in
	// [MinQueueSize, MaxQueueSize]; 0 means DefaultQueueSize.
	QueueSize int
	// Inhibit completes reports without discarding anything.
	Inhibit bool
	// Async processes notifications on a worker goroutine, as QEMU's
	// main loop does, instead of inside the vCPU's notify access.
	Async bool
	// MSI, when set, is signalled after used buffers or a config change;
	// without it the driver polls the used index (works on every backend,
	// with or without an irqchip).
	MSI *MSI
	// BeforeComplete, when set, runs after an element's ranges were handled
	// and before it is completed: tests use it to hold a report in flight
	// while they race a reset, notifications or guest writes with it.
	// Register accesses proceed meanwhile; Reset waits for it.
	BeforeComplete func(head uint16)
}

// Reason says why a reported range was acknowledged but not discarded.
type Reason string

// Reasons a range is ignored.
const (
	ReasonEmpty          Reason = "zero length"
	ReasonWraps          Reason = "range wraps the address space"
	ReasonUnaligned      Reason = "not 4 KiB aligned"
	ReasonOutsideRAM     Reason = "outside guest RAM"
	ReasonCrossesSlot    Reason = "crosses a memslot boundary"
	ReasonReadOnly       Reason = "in a read-only memslot"
	ReasonDeviceReadable Reason = "device-readable buffer"
	ReasonDiscardFailed  Reason = "host discard failed"
)

// Stats is what the device did since it was created (Reset keeps them).
type Stats struct {
	Notifies        uint64 // QueueNotify writes for the reporting queue
	Elements        uint64 // elements completed (used entries written)
	Ranges          uint64 // descriptors of completed elements
	BytesDiscarded  uint64
	BytesPoisoned   uint64
	BytesInhibited  uint64 // reported while inhibited: completed, kept
	Ignored         map[Reason]uint64
	IgnoredBytes    uint64
	NeedsReset      uint64 // times the device set DEVICE_NEEDS_RESET
	LastNeedsReset  string // why, the last time
	BadAccesses     uint64 // register accesses of the wrong width or offset
	Interrupts      uint64
	InterruptErrors uint64
	Resets          uint64
	DiscardTime     time.Duration // spent in the host discard calls
	LastDiscardErr  string
}

// Device is one free-page-reporting device. Its methods are safe for
// concurrent use: vCPUs access it from their own goroutines.
type Device struct {
	vm   VM
	cfg  Config
	max  uint16
	work chan struct{} // Async: a notification to process
	done chan struct{} // Async: the worker ended

	// elem is held while one element is processed, from reading its
	// chain to completing it; Reset takes it first, so a reset waits for
	// the element in flight. Discards run under elem only, so register
	// accesses (another vCPU's notify) do not wait for them.
	elem sync.Mutex
	// resetting counts Reset calls waiting for elem: the worker stops at
	// the next element boundary instead of racing them for it.
	resetting atomic.Int32

	mu sync.Mutex // everything below
	// Registers.
	status, isr            uint32
	devFeatSel, drvFeatSel uint32
	driverFeatures         uint64
	queueSel               uint32
	actual, poison         uint32
	q                      queue
	// gen changes whenever the queue is enabled, disabled or reset, so an
	// element taken from one queue is never completed into another.
	gen      uint64
	inhibit  bool
	stats    Stats
	closed   bool
	chainBuf []Desc
}

// New makes a device for vm. Attach it with vm.Attach(d, hv.Region{Space:
// hv.SpaceMMIO, Base: base, Size: RegionSize}).
func New(vm VM, cfg Config) (*Device, error) {
	if cfg.Name == "" {
		cfg.Name = "pagereport0"
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	n := cfg.QueueSize
	if n < MinQueueSize || n > MaxQueueSize || n&(n-1) != 0 {
		return nil, fmt.Errorf("pagereport %s: queue size %d: want a power of two in [%d, %d]", cfg.Name, n, MinQueueSize, MaxQueueSize)
	}
	d := &Device{vm: vm, cfg: cfg, max: uint16(n), inhibit: cfg.Inhibit}
	d.stats.Ignored = map[Reason]uint64{}
	if cfg.Async {
		d.work = make(chan struct{}, 1)
		d.done = make(chan struct{})
		go d.worker()
	}
	return d, nil
}

// Name implements hv.Device.
func (d *Device) Name() string { return d.cfg.Name }

// SetInhibit switches discarding off (true) or on, as assigning a
// passthrough device does in QEMU. Reports keep completing either way.
func (d *Device) SetInhibit(on bool) {
	d.mu.Lock()
	d.inhibit = on
	d.mu.Unlock()
}

// Stats returns a copy of the device's counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.stats
	s.Ignored = make(map[Reason]uint64, len(d.stats.Ignored))
	for k, v := range d.stats.Ignored {
		s.Ignored[k] = v
	}
	return s
}

// Status is the device status register.
func (d *Device) Status() uint32 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.status
}

// Reset implements hv.Device: the power-on state. An element being
// processed is completed first (Reset waits for it), elements the device
// has not taken stay the driver's, so no element is completed twice or
// completed into a queue set up after the reset.
func (d *Device) Reset() error {
	d.resetting.Add(1)
	d.elem.Lock()
	d.resetting.Add(-1)
	defer d.elem.Unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.resetLocked()
	return nil
}

func (d *Device) resetLocked() {
	d.status, d.isr = 0, 0
	d.devFeatSel, d.drvFeatSel, d.driverFeatures = 0, 0, 0
	d.queueSel, d.actual, d.poison = 0, 0, 0
	d.q = queue{}
	d.gen++
	d.inhibit = d.cfg.Inhibit
	d.stats.Resets++
}

// Close implements hv.Device: it stops the worker.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	if d.work != nil {
		close(d.work)
		<-d.done
	}
	return nil
}

// Access implements hv.Device.
func (d *Device) Access(a *hv.Access) error {
	if a.Offset >= RegConfig {
		d.mu.Lock()
		defer d.mu.Unlock()
		d.config(a)
		return nil
	}
	if len(a.Data) != 4 || a.Offset%4 != 0 {
		d.mu.Lock()
		d.stats.BadAccesses++
		d.mu.Unlock()
		if !a.Write {
			clear(a.Data)
		}
		return nil
	}
	if !a.Write {
		d.mu.Lock()
		v := d.read(a.Offset)
		d.mu.Unlock()
		binary.LittleEndian.PutUint32(a.Data, v)
		return nil
	}
	v := binary.LittleEndian.Uint32(a.Data)
	if a.Offset == RegStatus && v == 0 {
		return d.Reset() // the driver's reset waits for an element in flight too
	}
	d.mu.Lock()
	notify := d.write(a.Offset, v)
	d.mu.Unlock()
	if notify {
		d.kick()
	}
	return nil
}

func (d *Device) read(off uint64) uint32 {
	switch off {
	case RegMagic:
		return MagicValue
	case RegVersion:
		return Version
	case RegDeviceID:
		return DeviceID
	case RegVendorID:
		return VendorID
	case RegDeviceFeatures:
		if d.devFeatSel > 1 {
			return 0
		}
		return uint32(uint64(Offered) >> (32 * d.devFeatSel))
	case RegQueueNumMax:
		if d.queueSel == ReportingQueue && d.driverFeatures&FeaturePageReporting != 0 {
			return uint32(d.max)
		}
		return 0
	case RegQueueReady:
		if d.queueSel == ReportingQueue && d.q.ready {
			return 1
		}
		return 0
	case RegInterruptStatus:
		return d.isr
	case RegStatus:
		return d.status
	case RegConfigGeneration:
		return 0
	}
	d.stats.BadAccesses++
	return 0
}

// write handles a register write and reports whether the queue was notified.
func (d *Device) write(off uint64, v uint32) bool {
	switch off {
	case RegDeviceFeaturesSel:
		d.devFeatSel = v
	case RegDriverFeaturesSel:
		d.drvFeatSel = v
	case RegDriverFeatures:
		if d.status&(StatusFeaturesOK|StatusDriverOK) != 0 || d.drvFeatSel > 1 {
			d.stats.BadAccesses++ // features are fixed once accepted
			return false
		}
		shift := 32 * d.drvFeatSel
		d.driverFeatures = d.driverFeatures&^(0xffffffff<<shift) | uint64(v)<<shift
	case RegQueueSel:
		d.queueSel = v
	case RegQueueNum, RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow, RegQueueDriverHigh, RegQueueDeviceLow, RegQueueDeviceHigh:
		d.queueReg(off, v)
	case RegQueueReady:
		d.queueReady(v)
	case RegQueueNotify:
		if v != ReportingQueue {
			d.stats.BadAccesses++
			return false
		}
		d.stats.Notifies++
		return true
	case RegInterruptACK:
		d.isr &^= v
	case RegStatus:
		d.setStatus(v)
		// DRIVER_OK may find elements the driver queued before it.
		return d.status&StatusDriverOK != 0 && d.q.ready
	default:
		d.stats.BadAccesses++
	}
	return false
}

// queueReg writes a queue register of the selected queue, which must be
// the reporting queue and not yet enabled (virtio: the driver must not
// change an enabled queue).
func (d *Device) queueReg(off uint64, v uint32) {
	if d.queueSel != ReportingQueue || d.q.ready || d.driverFeatures&FeaturePageReporting == 0 {
		d.stats.BadAccesses++
		return
	}
	lo := func(x uint64) uint64 { return x&^0xffffffff | uint64(v) }
	hi := func(x uint64) uint64 { return x&0xffffffff | uint64(v)<<32 }
	switch off {
	case RegQueueNum:
		if v > 0xffff {
			v = 0 // refused when the queue is enabled
		}
		d.q.size = uint16(v)
	case RegQueueDescLow:
		d.q.desc = lo(d.q.desc)
	case RegQueueDescHigh:
		d.q.desc = hi(d.q.desc)
	case RegQueueDriverLow:
		d.q.avail = lo(d.q.avail)
	case RegQueueDriverHigh:
		d.q.avail = hi(d.q.avail)
	case RegQueueDeviceLow:
		d.q.used = lo(d.q.used)
	case RegQueueDeviceHigh:
		d.q.used = hi(d.q.used)
	}
}

func (d *Device) queueReady(v uint32) {
	if d.queueSel != ReportingQueue {
		d.stats.BadAccesses++
		return
	}
	if v == 0 {
		if d.q.ready {
			d.q.ready = false
			d.gen++
		}
		return
	}
	if d.q.ready {
		return
	}
	if d.status&StatusFeaturesOK == 0 || d.driverFeatures&FeaturePageReporting == 0 {
		d.needsReset(broken("queue enabled before FEATURES_OK with VIRTIO_BALLOON_F_PAGE_REPORTING"))
		return
	}
	if err := d.q.check(d.max); err != nil {
		d.needsReset(err)
		return
	}
	d.q.lastAvail, d.q.usedIdx = 0, 0
	d.q.ready = true
	d.gen++
}

// setStatus applies a non-zero driver status write (0 is Reset): FEATURES_OK is kept
// only for an acceptable feature set, and the driver cannot set or clear
// DEVICE_NEEDS_RESET.
func (d *Device) setStatus(v uint32) {
	v = v&^StatusNeedsReset | d.status&StatusNeedsReset
	if v&StatusFeaturesOK != 0 && d.status&StatusFeaturesOK == 0 {
		if d.driverFeatures&^Offered != 0 || d.driverFeatures&FeatureVersion1 == 0 {
			v &^= StatusFeaturesOK // refused: the driver reads it back clear
		}
	}
	d.status = v
}

// config serves the balloon configuration space. poison_val may only be
// written before DRIVER_OK, as the Linux driver does during probe.
func (d *Device) config(a *hv.Access) {
	off := a.Offset - RegConfig
	n := uint64(len(a.Data))
	if off+n > configSize || off%n != 0 {
		d.stats.BadAccesses++
		if !a.Write {
			clear(a.Data)
		}
		return
	}
	var cfg [configSize]byte
	binary.LittleEndian.PutUint32(cfg[ConfigActual:], d.actual)
	binary.LittleEndian.PutUint32(cfg[ConfigPoisonVal:], d.poison)
	if !a.Write {
		copy(a.Data, cfg[off:off+n])
		return
	}
	copy(cfg[off:off+n], a.Data)
	d.actual = binary.LittleEndian.Uint32(cfg[ConfigActual:])
	if off < ConfigPoisonVal+4 && off+n > ConfigPoisonVal {
		if d.status&StatusDriverOK != 0 {
			d.stats.BadAccesses++
			return
		}
		d.poison = binary.LittleEndian.Uint32(cfg[ConfigPoisonVal:])
	}
}

// needsReset gives up on the queue until the driver resets the device.
func (d *Device) needsReset(err error) {
	d.q.ready = false
	d.gen++
	d.status |= StatusNeedsReset
	d.isr |= InterruptConfigChange
	d.stats.NeedsReset++
	d.stats.LastNeedsReset = err.Error()
	d.interrupt()
}

// interrupt signals the configured MSI (mu held). Failures are counted,
// not returned: the driver can always poll.
func (d *Device) interrupt() {
	if d.cfg.MSI == nil {
		return
	}
	d.stats.Interrupts++
	if err := d.vm.SignalMSI(d.cfg.MSI.Addr, d.cfg.MSI.Data); err != nil {
		d.stats.InterruptErrors++
	}
}

// kick processes the queue now or hands it to the worker.
func (d *Device) kick() {
	if d.work == nil {
		d.process()
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return // Close closed the channel
	}
	select {
	case d.work <- struct{}{}:
	default: // a notification is pending already; it will see this one's elements
	}
}

func (d *Device) worker() {
	defer close(d.done)
	for range d.work {
		d.process()
	}
}

// process completes every element the driver made available, one at a
// time under the lock, so a reset between two elements drops the rest
// and a reset during one waits for it.
func (d *Device) process() {
	completed := false
	for {
		more, done := d.step()
		completed = completed || done
		if !more {
			break
		}
	}
	if completed {
		d.mu.Lock()
		d.raiseUsed()
		d.mu.Unlock()
	}
}

// raiseUsed sets the used-buffer interrupt unless the driver suppressed it.
func (d *Device) raiseUsed() {
	if !d.q.ready {
		return
	}
	flags, err := load16(d.vm, d.q.avail)
	if err != nil || flags&AvailFNoInterrupt != 0 {
		return
	}
	d.isr |= InterruptUsedBuffer
	d.interrupt()
}

// mode is how reported ranges are handled, fixed for one element.
type mode struct {
	inhibit bool
	poison  uint32 // non-zero: fill instead of discard
}

// tally is what handling one element's ranges did, merged into Stats
// when the element completes.
type tally struct {
	ignored                        map[Reason]uint64
	ignoredBytes                   uint64
	discarded, poisoned, inhibited uint64
	discardTime                    time.Duration
	lastErr                        string
}

// step handles one available element. more is false when there is nothing
// (left) to do; done says whether an element was completed.
func (d *Device) step() (more, done bool) {
	d.elem.Lock()
	defer d.elem.Unlock()
	d.mu.Lock()
	if d.resetting.Load() > 0 || d.closed || !d.q.ready || d.status&StatusDriverOK == 0 || d.status&StatusNeedsReset != 0 {
		d.mu.Unlock()
		return false, false
	}
	// Only step advances the queue's indices, and steps are serialised
	// by elem, so a copy is current until the registers change gen.
	q, gen := d.q, d.gen
	m := mode{inhibit: d.inhibit}
	if d.driverFeatures&FeaturePagePoison != 0 {
		m.poison = d.poison
	}
	buf := d.chainBuf
	d.mu.Unlock()

	n, _, err := q.pending(d.vm)
	if err == nil && n == 0 {
		return false, false
	}
	var head uint16
	if err == nil {
		head, err = q.head(d.vm)
	}
	var chain []Desc
	if err == nil {
		chain, err = q.chain(d.vm, head, buf)
	}
	if err != nil {
		d.mu.Lock()
		if d.gen == gen {
			d.needsReset(err)
		}
		d.mu.Unlock()
		return false, false
	}
	t := tally{ignored: map[Reason]uint64{}}
	for _, r := range chain {
		d.report(m, r, &t)
	}
	if d.cfg.BeforeComplete != nil {
		d.cfg.BeforeComplete(head)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	d.chainBuf = chain
	d.merge(&t)
	if d.gen != gen {
		return false, false // the driver disabled the queue meanwhile: the element is its again
	}
	if err := d.q.push(d.vm, head); err != nil {
		d.needsReset(err)
		return false, false
	}
	d.stats.Elements++
	d.stats.Ranges += uint64(len(chain))
	return true, true
}

func (d *Device) merge(t *tally) {
	for k, v := range t.ignored {
		d.stats.Ignored[k] += v
	}
	d.stats.IgnoredBytes += t.ignoredBytes
	d.stats.BytesDiscarded += t.discarded
	d.stats.BytesPoisoned += t.poisoned
	d.stats.BytesInhibited += t.inhibited
	d.stats.DiscardTime += t.discardTime
	if t.lastErr != "" {
		d.stats.LastDiscardErr = t.lastErr
	}
}

// report handles one reported range.
func (d *Device) report(md mode, r Desc, t *tally) {
	m, why := d.resolve(r)
	if why != "" {
		t.ignored[why]++
		t.ignoredBytes += uint64(r.Len)
		return
	}
	n := uint64(r.Len)
	switch {
	case md.inhibit:
		t.inhibited += n
	case md.poison != 0:
		if err := d.fill(r.Addr, n, md.poison); err != nil {
			t.ignored[ReasonDiscardFailed]++
			t.lastErr = err.Error()
			return
		}
		t.poisoned += n
	default:
		start := time.Now()
		err := m.Memory.PunchHole(m.Offset+(r.Addr-m.GPA), n)
		t.discardTime += time.Since(start)
		if err != nil {
			t.ignored[ReasonDiscardFailed]++
			t.lastErr = err.Error()
			return
		}
		t.discarded += n
	}
}

// resolve finds the one writable memslot that holds all of r, or says why
// the range is ignored. Only such a range is ever discarded, so nothing
// outside what the guest reported can be.
func (d *Device) resolve(r Desc) (hv.Memslot, Reason) {
	n := uint64(r.Len)
	switch {
	case r.Flags&DescFWrite == 0:
		return hv.Memslot{}, ReasonDeviceReadable
	case n == 0:
		return hv.Memslot{}, ReasonEmpty
	case r.Addr+n < r.Addr:
		return hv.Memslot{}, ReasonWraps
	case r.Addr%hv.PageSize != 0 || n%hv.PageSize != 0:
		return hv.Memslot{}, ReasonUnaligned
	}
	for _, m := range d.vm.Memslots() {
		if !m.Contains(r.Addr) {
			continue
		}
		switch {
		case m.Memory == nil:
			return hv.Memslot{}, ReasonOutsideRAM
		case n > m.Size-(r.Addr-m.GPA):
			return hv.Memslot{}, ReasonCrossesSlot
		case m.Flags&hv.MemReadOnly != 0:
			return hv.Memslot{}, ReasonReadOnly
		case m.Offset+m.Size > m.Memory.Size():
			return hv.Memslot{}, ReasonOutsideRAM // a slot beyond its backing: never touch it
		}
		return m, ""
	}
	return hv.Memslot{}, ReasonOutsideRAM
}

// fill writes the poison value over [gpa, gpa+n), page by page.
func (d *Device) fill(gpa, n uint64, poison uint32) error {
	page := make([]byte, hv.PageSize)
	for i := 0; i < len(page); i += 4 {
		binary.LittleEndian.PutUint32(page[i:], poison)
	}
	for off := uint64(0); off < n; off += hv.PageSize {
		if err := d.vm.WriteGPA(gpa+off, page); err != nil {
			return fmt.Errorf("poison fill at %#x: %w", gpa+off, err)
		}
	}
	return nil
}
