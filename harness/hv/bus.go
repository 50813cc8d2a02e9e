package hv

import (
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
)

// Bus routes MMIO and PIO exits to attached device models. Both backends
// embed one so device dispatch behaves identically on each.
type Bus struct {
	// n counts attached ranges so run loops check for devices without a lock.
	n    atomic.Int32
	mu   sync.RWMutex
	mmio []mmioRange
	pio  []pioRange
}

type mmioRange struct {
	base, size uint64
	d          MMIOHandler
}

type pioRange struct {
	port, n uint16
	d       PIOHandler
}

// AttachMMIO adds an MMIO range; overlapping ranges are refused.
func (b *Bus) AttachMMIO(base, size uint64, d MMIOHandler) error {
	if size == 0 || base+size < base {
		return fmt.Errorf("attach mmio [%#x, +%#x): empty or wrapping range", base, size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.mmio {
		if base < r.base+r.size && r.base < base+size {
			return fmt.Errorf("attach mmio [%#x, +%#x): overlaps [%#x, +%#x)", base, size, r.base, r.size)
		}
	}
	b.mmio = append(b.mmio, mmioRange{base, size, d})
	b.n.Add(1)
	sort.Slice(b.mmio, func(i, j int) bool { return b.mmio[i].base < b.mmio[j].base })
	return nil
}

// AttachPIO adds a port range; overlapping ranges are refused.
func (b *Bus) AttachPIO(port, n uint16, d PIOHandler) error {
	if n == 0 || uint32(port)+uint32(n) > 0x10000 {
		return fmt.Errorf("attach pio [%#x, +%d): empty or beyond port 0xffff", port, n)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.pio {
		if uint32(port) < uint32(r.port)+uint32(r.n) && uint32(r.port) < uint32(port)+uint32(n) {
			return fmt.Errorf("attach pio [%#x, +%d): overlaps [%#x, +%d)", port, n, r.port, r.n)
		}
	}
	b.pio = append(b.pio, pioRange{port, n, d})
	b.n.Add(1)
	return nil
}

// Empty reports whether nothing is attached, so run loops can skip dispatch.
func (b *Bus) Empty() bool { return b.n.Load() == 0 }

// Dispatch hands e to the device that claims it. handled is false when no
// device claims the exit (the caller returns it to its own caller).
func (b *Bus) Dispatch(vcpu int, e Exit) (handled bool, err error) {
	switch x := e.(type) {
	case *MMIOExit:
		b.mu.RLock()
		var d MMIOHandler
		var off uint64
		for _, r := range b.mmio {
			if x.GPA >= r.base && x.GPA-r.base < r.size {
				d, off = r.d, x.GPA-r.base
				break
			}
		}
		b.mu.RUnlock()
		if d == nil {
			return false, nil
		}
		if err := d.MMIO(vcpu, off, x.Data, x.Write); err != nil {
			return true, fmt.Errorf("device at mmio %#x: %w", x.GPA, err)
		}
		return true, nil
	case *IOExit:
		b.mu.RLock()
		var d PIOHandler
		var off uint16
		for _, r := range b.pio {
			if x.Port >= r.port && uint32(x.Port)-uint32(r.port) < uint32(r.n) {
				d, off = r.d, x.Port-r.port
				break
			}
		}
		b.mu.RUnlock()
		if d == nil {
			return false, nil
		}
		for i := 0; i < x.Count; i++ {
			if err := d.PIO(vcpu, off, x.Data[i*x.Size:(i+1)*x.Size], !x.In); err != nil {
				return true, fmt.Errorf("device at port %#x: %w", x.Port, err)
			}
		}
		return true, nil
	}
	return false, nil
}
