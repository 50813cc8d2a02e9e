package hv

import (
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Device is a device model attached to a VM. It sees guest accesses to the
// regions it claims through Access, exactly once each, from the vCPU that
// made them (inside that vCPU's Run); it reaches guest memory and raises
// interrupts through the VM it was given. Every field a guest writes is
// untrusted: a device validates it and reports errors through its own
// status registers. An error returned from Access is a device-model bug or
// an access the device cannot serve at all: it stops the vCPU and Run
// returns it wrapped in a *DeviceError. Access must not call Detach,
// ResetDevices or Close of its own VM: they wait for the accesses in
// flight, its own included.
type Device interface {
	// Name identifies the device in errors and reports ("vgpu0").
	Name() string
	// Access serves one guest access to one of the device's regions.
	Access(a *Access) error
	// Reset returns the device to its power-on state.
	Reset() error
	// Close releases what the device holds. The bus calls it once, on
	// Detach or when the VM closes, after every access in flight ended.
	Close() error
}

// Space is the address space a region lives in.
type Space uint8

// Address spaces.
const (
	SpaceMMIO Space = iota // guest-physical addresses no memslot backs
	SpacePIO               // I/O ports
)

func (s Space) String() string {
	if s == SpacePIO {
		return "pio"
	}
	return "mmio"
}

// Region is one range a device claims.
type Region struct {
	Space Space
	Base  uint64
	Size  uint64
}

func (r Region) String() string { return fmt.Sprintf("%s [%#x, +%#x)", r.Space, r.Base, r.Size) }

func (r Region) overlaps(o Region) bool {
	return r.Space == o.Space && r.Base < o.Base+o.Size && o.Base < r.Base+r.Size
}

// Access is one guest access to a device region. For a read the device
// fills Data; for a write it consumes it. Data is valid only during the call.
type Access struct {
	VCPU   int    // the vCPU that made the access
	Region int    // index of the region in the device's Attach call
	Offset uint64 // from the region's base
	Data   []byte // 1, 2, 4 or 8 bytes
	Write  bool
}

// DeviceError is a device's failure to serve an access: Run returns it.
type DeviceError struct {
	Device string
	Region Region
	Offset uint64
	Write  bool
	Err    error
}

func (e *DeviceError) Error() string {
	op := "read"
	if e.Write {
		op = "write"
	}
	return fmt.Sprintf("device %s: %s at %s offset %#x: %v", e.Device, op, e.Region, e.Offset, e.Err)
}

func (e *DeviceError) Unwrap() error { return e.Err }

// ErrDetached is returned for operations on a device the bus no longer holds.
var ErrDetached = errors.New("device not attached")

// attachment is one attached device. inflight is held for reading during
// each access, so Detach can wait for the accesses in flight to end.
type attachment struct {
	d        Device
	regions  []Region
	inflight sync.RWMutex
}

type claim struct {
	r   Region
	idx int
	a   *attachment
}

// Bus routes MMIO and PIO exits to attached devices and owns their
// lifecycle. Both backends embed one so device dispatch behaves
// identically on each; a backend calls Dispatch exactly once per guest
// access (an instruction restarted after a map change must not dispatch
// a write again).
type Bus struct {
	// n counts attached devices so run loops check for devices without a lock.
	n      atomic.Int32
	mu     sync.RWMutex
	claims []claim // sorted by space, then base
	devs   []*attachment
	closed bool
}

// Attach adds d with its regions. Empty, wrapping, overlapping (with each
// other or with another device's) and beyond-0xffff port regions are
// refused, as is a device attached twice.
func (b *Bus) Attach(d Device, regions ...Region) error {
	if d == nil || len(regions) == 0 {
		return fmt.Errorf("attach device: a device and at least one region are needed")
	}
	for i, r := range regions {
		if r.Size == 0 || r.Base+r.Size < r.Base {
			return fmt.Errorf("attach %s: region %s: empty or wrapping", d.Name(), r)
		}
		if r.Space == SpacePIO && r.Base+r.Size > 0x10000 {
			return fmt.Errorf("attach %s: region %s: beyond port 0xffff", d.Name(), r)
		}
		if r.Space != SpaceMMIO && r.Space != SpacePIO {
			return fmt.Errorf("attach %s: region %d: unknown space %d", d.Name(), i, r.Space)
		}
		for _, o := range regions[:i] {
			if r.overlaps(o) {
				return fmt.Errorf("attach %s: region %s overlaps its own %s", d.Name(), r, o)
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("attach %s: %w", d.Name(), ErrDetached)
	}
	for _, a := range b.devs {
		if a.d == d {
			return fmt.Errorf("attach %s: already attached", d.Name())
		}
	}
	for _, r := range regions {
		for _, c := range b.claims {
			if r.overlaps(c.r) {
				return fmt.Errorf("attach %s: region %s overlaps %s of %s", d.Name(), r, c.r, c.a.d.Name())
			}
		}
	}
	a := &attachment{d: d, regions: append([]Region(nil), regions...)}
	claims := append([]claim(nil), b.claims...)
	for i, r := range regions {
		claims = append(claims, claim{r: r, idx: i, a: a})
	}
	sort.Slice(claims, func(i, j int) bool {
		if claims[i].r.Space != claims[j].r.Space {
			return claims[i].r.Space < claims[j].r.Space
		}
		return claims[i].r.Base < claims[j].r.Base
	})
	b.claims = claims
	b.devs = append(b.devs, a)
	b.n.Add(1)
	return nil
}

// Detach removes d: no access reaches it once Detach returns, the
// accesses in flight have ended, and d.Close has been called.
func (b *Bus) Detach(d Device) error {
	b.mu.Lock()
	a := b.remove(d)
	b.mu.Unlock()
	if a == nil {
		return fmt.Errorf("detach device: %w", ErrDetached)
	}
	return a.close()
}

// remove takes d off the bus (b.mu held) and returns its attachment.
func (b *Bus) remove(d Device) *attachment {
	var a *attachment
	for i, x := range b.devs {
		if x.d == d {
			a = x
			b.devs = append(b.devs[:i:i], b.devs[i+1:]...)
			break
		}
	}
	if a == nil {
		return nil
	}
	claims := make([]claim, 0, len(b.claims))
	for _, c := range b.claims {
		if c.a != a {
			claims = append(claims, c)
		}
	}
	b.claims = claims
	b.n.Add(-1)
	return a
}

func (a *attachment) close() error {
	a.inflight.Lock() // wait for accesses in flight
	defer a.inflight.Unlock()
	if err := a.d.Close(); err != nil {
		return fmt.Errorf("close device %s: %w", a.d.Name(), err)
	}
	return nil
}

// Reset resets every attached device, in attach order.
func (b *Bus) Reset() error {
	b.mu.RLock()
	devs := append([]*attachment(nil), b.devs...)
	b.mu.RUnlock()
	var errs []error
	for _, a := range devs {
		a.inflight.Lock()
		if err := a.d.Reset(); err != nil {
			errs = append(errs, fmt.Errorf("reset device %s: %w", a.d.Name(), err))
		}
		a.inflight.Unlock()
	}
	return errors.Join(errs...)
}

// Close detaches and closes every device; later Attach calls fail. The
// VM calls it from its own Close.
func (b *Bus) Close() error {
	b.mu.Lock()
	b.closed = true
	devs := b.devs
	b.devs, b.claims = nil, nil
	b.n.Store(0)
	b.mu.Unlock()
	var errs []error
	for _, a := range devs {
		if err := a.close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Devices lists the attached devices in attach order.
func (b *Bus) Devices() []Device {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]Device, len(b.devs))
	for i, a := range b.devs {
		out[i] = a.d
	}
	return out
}

// Empty reports whether nothing is attached, so run loops can skip dispatch.
func (b *Bus) Empty() bool { return b.n.Load() == 0 }

// find returns the claim holding addr in space s, with the attachment's
// inflight lock held for reading (the caller releases it).
func (b *Bus) find(s Space, addr uint64) (claim, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	cs := b.claims
	i := sort.Search(len(cs), func(i int) bool {
		if cs[i].r.Space != s {
			return cs[i].r.Space > s
		}
		return cs[i].r.Base+cs[i].r.Size > addr
	})
	if i < len(cs) && cs[i].r.Space == s && cs[i].r.Base <= addr {
		c := cs[i]
		c.a.inflight.RLock()
		return c, true
	}
	return claim{}, false
}

// Dispatch hands e to the device that claims it. handled is false when no
// device claims the exit (the caller returns it to its own caller). A
// string PIO exit is delivered element by element; an MMIO access that
// runs past the end of its region is refused (a *DeviceError), since the
// device would see bytes that are not its own.
func (b *Bus) Dispatch(vcpu int, e Exit) (handled bool, err error) {
	switch x := e.(type) {
	case *MMIOExit:
		c, ok := b.find(SpaceMMIO, x.GPA)
		if !ok {
			return false, nil
		}
		defer c.a.inflight.RUnlock()
		off := x.GPA - c.r.Base
		a := Access{VCPU: vcpu, Region: c.idx, Offset: off, Data: x.Data, Write: x.Write}
		if uint64(len(x.Data)) > c.r.Size-off {
			return true, &DeviceError{Device: c.a.d.Name(), Region: c.r, Offset: off, Write: x.Write,
				Err: fmt.Errorf("%d-byte access runs past the region's end", len(x.Data))}
		}
		return true, deliver(c, &a)
	case *IOExit:
		c, ok := b.find(SpacePIO, uint64(x.Port))
		if !ok {
			return false, nil
		}
		defer c.a.inflight.RUnlock()
		off := uint64(x.Port) - c.r.Base
		for i := 0; i < x.Count; i++ {
			a := Access{VCPU: vcpu, Region: c.idx, Offset: off, Data: x.Data[i*x.Size : (i+1)*x.Size], Write: !x.In}
			if err := deliver(c, &a); err != nil {
				return true, err
			}
		}
		return true, nil
	}
	return false, nil
}

func deliver(c claim, a *Access) error {
	if err := c.a.d.Access(a); err != nil {
		return &DeviceError{Device: c.a.d.Name(), Region: c.r, Offset: a.Offset, Write: a.Write, Err: err}
	}
	return nil
}
