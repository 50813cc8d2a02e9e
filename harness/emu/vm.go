package emu

import (
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// VM is one emulated virtual machine.
type VM struct {
	h   *Hypervisor
	cfg hv.VMConfig
	bus hv.Bus
	// GuestAccess is host and device access to guest memory (hv.GuestMemory)
	// over the current slot map; see guestmem.go.
	hv.GuestAccess
	ioapic ioapic

	// closing is set first thing in Close: vCPUs leave Run at their next
	// instruction boundary. runMu is held for reading by every Run, so
	// Close knows when no vCPU is in guest memory any more.
	closing atomic.Bool
	runMu   sync.RWMutex

	mu     sync.Mutex // slot updates, vCPU list, memInfo map
	slots  map[uint32]*slot
	mems   map[*hv.Memory]*memInfo
	vcpus  []*VCPU
	closed bool

	// mm is the current guest-physical map; vCPUs load it when epoch moves.
	mm atomic.Pointer[memMap]
	// epoch moves whenever something vCPUs may have cached (TLB entries,
	// slot pointers) becomes stale; see syncVCPUs.
	epoch atomic.Uint64
	// running is the vCPU list that broadcasts reach (copy on write).
	running atomic.Pointer[[]*VCPU]
	// pmuFilter is the PMU event filter; vCPUs pick it up at entry.
	pmuFilter atomic.Pointer[pmuFilter]

	// splitLock serialises LOCKed accesses that straddle an 8-byte
	// boundary, which host atomics cannot do in one operation.
	splitLock sync.Mutex

	dirtyPages   atomic.Uint64 // pages logged (bitmap or ring)
	missingFault atomic.Uint64 // missing-page handler calls
	codeInval    atomic.Uint64 // decoded pages invalidated by writes
}

var _ hv.VM = (*VM)(nil)

// slot is one memslot with its tracking state. A slot value is immutable
// once published in a memMap except for the atomic bitmaps, which moves
// and flag changes carry over to the new value.
type slot struct {
	m        hv.Memslot
	mem      []byte // m.Bytes()
	mi       *memInfo
	pageBase uint64 // first page of the slot inside mi
	readonly bool
	log      bool
	// dirty is the dirty bitmap (bitmap mode), armed the pages whose next
	// write must be logged ("write-protected" in KVM terms). Both atomic.
	dirty []uint64
	armed []uint64
	// missing marks pages a missing-page handler must fill first.
	missing *missingState
}

type missingState struct {
	mu       sync.Mutex
	bits     []uint64 // atomic
	handler  hv.MissingPageHandler
	firstErr error // the handler's first error, returned on removal (mu)
	// unwatch stops hearing of discards of the slot's memory.
	unwatch func()
}

// watchDiscards makes pages of the slot that are discarded later (a
// device's PunchHole, free page reporting) missing again, as userfaultfd
// reports them again on KVM: their next touch calls the handler.
func (vm *VM) watchDiscards(ms *missingState, m hv.Memslot) {
	ms.unwatch = m.Memory.OnDiscard(func(off, n uint64) {
		lo, hi := max(off, m.Offset), min(off+n, m.Offset+m.Size)
		if lo >= hi {
			return
		}
		for p := (lo - m.Offset) / hv.PageSize; p < (hi-m.Offset+hv.PageSize-1)/hv.PageSize; p++ {
			atomic.OrUint64(&ms.bits[p/64], 1<<(p%64))
		}
		vm.syncVCPUs() // drop cached translations of the pages
	})
}

func (s *slot) pages() uint64 { return s.m.Size / hv.PageSize }

// memInfo is per host mapping: the "holds decoded code" word of each page.
// A word is odd while some vCPU may hold decoded instructions of the page;
// a write to the page makes it even again (a new value), which every cached
// decode of that page notices. Keyed by mapping, not slot, so aliases of
// the same host page invalidate each other.
type memInfo struct {
	code []uint32
}

// memMap is an immutable snapshot of the slots, sorted by GPA, in chunks
// of at most 2*mapChunk slots: an update copies the chunk list and the
// one or two chunks it touches, so its cost grows with the square root of
// the slot count rather than with the count (memslot_perf_test sweeps up
// to 32763 slots). public is the same list as hv.Memslots for
// GuestAccess, built on its first use: a VM with thousands of slots
// changes its map far more often than host code reads guest memory.
type memMap struct {
	chunks     [][]*slot // each non-empty and sorted; chunk i's slots below chunk i+1's
	publicOnce sync.Once
	public     []hv.Memslot
}

// mapChunk is the chunk size a split produces.
const mapChunk = 64

// publicSlots returns the map as hv.Memslots (built once per map).
func (mm *memMap) publicSlots() []hv.Memslot {
	mm.publicOnce.Do(func() {
		for _, c := range mm.chunks {
			for _, s := range c {
				mm.public = append(mm.public, s.m)
			}
		}
	})
	return mm.public
}

// search returns the position of the first slot that ends above gpa:
// chunk i, index j (i == len(chunks) when there is none).
func (mm *memMap) search(gpa uint64) (i, j int) {
	cs := mm.chunks
	i = sort.Search(len(cs), func(i int) bool {
		l := cs[i][len(cs[i])-1]
		return l.m.GPA+l.m.Size > gpa
	})
	if i == len(cs) {
		return i, 0
	}
	c := cs[i]
	return i, sort.Search(len(c), func(j int) bool { return c[j].m.GPA+c[j].m.Size > gpa })
}

// overlapping returns a slot other than id that overlaps [gpa, gpa+size).
// Slots never overlap each other, so only the slots from the first one
// ending above gpa on can.
func (mm *memMap) overlapping(id uint32, gpa, size uint64) *slot {
	i, j := mm.search(gpa)
	for ; i < len(mm.chunks); i, j = i+1, 0 {
		for c := mm.chunks[i]; j < len(c); j++ {
			if c[j].m.GPA >= gpa+size {
				return nil
			}
			if c[j].m.Slot != id {
				return c[j]
			}
		}
	}
	return nil
}

// find returns the slot holding gpa, or nil.
func (mm *memMap) find(gpa uint64) *slot {
	i, j := mm.search(gpa)
	if i < len(mm.chunks) {
		if s := mm.chunks[i][j]; s.m.GPA <= gpa {
			return s
		}
	}
	return nil
}

// without returns a copy of mm's chunk list without slot s.
func without(chunks [][]*slot, s *slot) [][]*slot {
	mm := memMap{chunks: chunks}
	i, j := mm.search(s.m.GPA)
	if i == len(chunks) || chunks[i][j] != s {
		return chunks
	}
	c := chunks[i]
	nc := append(append(make([]*slot, 0, len(c)-1), c[:j]...), c[j+1:]...)
	out := append(make([][]*slot, 0, len(chunks)), chunks[:i]...)
	if len(nc) > 0 {
		out = append(out, nc)
	}
	return append(out, chunks[i+1:]...)
}

// with returns a copy of mm's chunk list with slot s inserted in GPA
// order, splitting a chunk that grows past 2*mapChunk.
func with(chunks [][]*slot, s *slot) [][]*slot {
	if len(chunks) == 0 {
		return [][]*slot{{s}}
	}
	// The chunk that holds the first slot above s, or the last chunk.
	i := sort.Search(len(chunks), func(i int) bool { return chunks[i][len(chunks[i])-1].m.GPA > s.m.GPA })
	if i == len(chunks) {
		i--
	}
	c := chunks[i]
	j := sort.Search(len(c), func(j int) bool { return c[j].m.GPA > s.m.GPA })
	nc := make([]*slot, 0, len(c)+1)
	nc = append(append(append(nc, c[:j]...), s), c[j:]...)
	out := append(make([][]*slot, 0, len(chunks)+1), chunks[:i]...)
	if len(nc) > 2*mapChunk {
		out = append(out, nc[:mapChunk], nc[mapChunk:])
	} else {
		out = append(out, nc)
	}
	return append(out, chunks[i+1:]...)
}

// NewVM implements hv.Hypervisor.
func (h *Hypervisor) NewVM(cfg hv.VMConfig) (hv.VM, error) {
	vm, err := h.CreateVM(cfg)
	if err != nil {
		return nil, err // not a typed nil inside the interface
	}
	return vm, nil
}

// CreateVM is NewVM with the concrete type. Invalid configurations fail as
// KVM_ENABLE_CAP fails for them.
func (h *Hypervisor) CreateVM(cfg hv.VMConfig) (*VM, error) {
	if cfg.InitiallySet && !cfg.ManualProtect {
		return nil, fmt.Errorf("VM config: InitiallySet needs ManualProtect")
	}
	if n := cfg.DirtyRingBytes; n != 0 {
		// KVM: not a power of two, or below one page -> EINVAL; above the
		// maximum -> E2BIG (kvm_vm_ioctl_enable_dirty_log_ring).
		if n < 0 || n&(n-1) != 0 || n < dirtyRingMinBytes || n%hv.PageSize != 0 {
			return nil, fmt.Errorf("KVM_ENABLE_CAP DIRTY_LOG_RING %d bytes: %w", n, unix.EINVAL)
		}
		if n > DirtyRingMaxBytes {
			return nil, fmt.Errorf("KVM_ENABLE_CAP DIRTY_LOG_RING %d bytes: %w", n, unix.E2BIG)
		}
	}
	if cfg.ARM64Type != 0 {
		return nil, hv.Unsupported(Name, hv.CapARM64IPASize, "VMConfig.ARM64Type %v: the emu's guests are x86-64", cfg.ARM64Type)
	}
	if cfg.DirtyRingWithBitmap && cfg.DirtyRingBytes == 0 {
		return nil, fmt.Errorf("KVM_ENABLE_CAP DIRTY_LOG_RING_WITH_BITMAP: needs a dirty ring: %w", unix.EINVAL)
	}
	vm := &VM{h: h, cfg: cfg, slots: map[uint32]*slot{}, mems: map[*hv.Memory]*memInfo{}}
	vm.GuestAccess = hv.GuestAccess{Slots: vm.publicSlots, Written: vm.hostWritten, Writable: vm.hostWritable}
	vm.ioapic.reset()
	vm.mm.Store(&memMap{})
	vm.running.Store(&[]*VCPU{})
	return vm, nil
}

// syncVCPUs makes every vCPU drop what it cached from the old memory map
// before the caller goes on, like KVM's remote TLB flush: it moves the
// epoch, pokes every vCPU, and waits until each one that is executing guest
// instructions has passed an instruction boundary. A vCPU outside the
// interpreter (stopped, or calling a device or handler) re-reads the epoch
// when it goes back in, so it is not waited for.
func (vm *VM) syncVCPUs() {
	e := vm.epoch.Add(1)
	vs := *vm.running.Load()
	for _, v := range vs {
		v.c.poke(attnEpoch)
	}
	for _, v := range vs {
		for v.c.inGuest.Load() && v.c.ackEpoch.Load() < e {
			runtime.Gosched()
		}
	}
}

// memInfoFor returns the code-tracking state of a mapping (vm.mu held).
func (vm *VM) memInfoFor(m *hv.Memory) *memInfo {
	mi := vm.mems[m]
	if mi == nil {
		mi = &memInfo{code: make([]uint32, m.Size()/hv.PageSize)}
		vm.mems[m] = mi
	}
	return mi
}

func slotErr(m hv.Memslot, err error, format string, args ...any) error {
	return fmt.Errorf("SET_USER_MEMORY_REGION slot %d gpa %#x size %#x flags %s: %s: %w",
		m.Slot, m.GPA, m.Size, m.Flags, fmt.Sprintf(format, args...), err)
}

// SetMemslot implements hv.VM with KVM's checks and errnos: creation,
// moves (same slot, new GPA) and flag changes of logging; anything else
// that changes an existing slot is EINVAL, overlap is EEXIST.
func (vm *VM) SetMemslot(m hv.Memslot) error {
	if m.Size == 0 { // KVM's meaning of size 0: delete
		if err := vm.DeleteMemslot(m.Slot); err != nil {
			return fmt.Errorf("SET_USER_MEMORY_REGION slot %d size 0: %w", m.Slot, err)
		}
		return nil
	}
	if m.Memory == nil {
		return slotErr(m, unix.EINVAL, "no memory")
	}
	if m.Size == 0 || m.Offset%hv.PageSize != 0 || m.Offset > m.Memory.Size() || m.Size > m.Memory.Size()-m.Offset {
		return slotErr(m, unix.EINVAL, "[%#x, +%#x) outside its %#x-byte memory", m.Offset, m.Size, m.Memory.Size())
	}
	if m.Flags&^(hv.MemLogDirty|hv.MemReadOnly) != 0 {
		return slotErr(m, unix.EINVAL, "unknown flags")
	}
	if m.Size%hv.PageSize != 0 || m.GPA%hv.PageSize != 0 {
		return slotErr(m, unix.EINVAL, "not page aligned")
	}
	if m.Slot >= MaxMemslots {
		return slotErr(m, unix.EINVAL, "slot id beyond %d", MaxMemslots)
	}
	if m.GPA+m.Size < m.GPA || m.GPA+m.Size > 1<<52 {
		return slotErr(m, unix.EINVAL, "guest-physical range wraps or exceeds 52 bits")
	}
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.closed {
		return slotErr(m, unix.EBADF, "VM closed")
	}
	old := vm.slots[m.Slot]
	if old != nil {
		if (old.m.Flags^m.Flags)&hv.MemReadOnly != 0 {
			return slotErr(m, unix.EINVAL, "cannot toggle read-only on an existing slot")
		}
		if old.m.Size != m.Size {
			return slotErr(m, unix.EINVAL, "cannot resize an existing slot")
		}
		if old.m.Memory != m.Memory || old.m.Offset != m.Offset {
			return slotErr(m, unix.EINVAL, "cannot change the backing of an existing slot")
		}
	}
	if old == nil || old.m.GPA != m.GPA {
		if o := vm.mm.Load().overlapping(m.Slot, m.GPA, m.Size); o != nil {
			return slotErr(m, unix.EEXIST, "overlaps slot %d", o.m.Slot)
		}
	}
	s := &slot{m: m, mem: m.Bytes(), mi: vm.memInfoFor(m.Memory), pageBase: m.Offset / hv.PageSize,
		readonly: m.Flags&hv.MemReadOnly != 0, log: m.Flags&hv.MemLogDirty != 0}
	words := (s.pages() + 63) / 64
	if old != nil {
		s.missing = old.missing
	}
	if s.log {
		switch {
		case old != nil && old.log:
			// Flag-only change or move: KVM keeps the bitmap. A move drops
			// every mapping, so every page traps again on its next write.
			s.dirty, s.armed = old.dirty, old.armed
			if old.m.GPA != m.GPA {
				setAll(s.armed, s.pages())
			}
		default:
			s.dirty = make([]uint64, words)
			s.armed = make([]uint64, words)
			if vm.cfg.InitiallySet && vm.cfg.DirtyRingBytes == 0 {
				// KVM_DIRTY_LOG_INITIALLY_SET: all bits set, nothing
				// write-protected until the first clear.
				setAll(s.dirty, s.pages())
			} else {
				setAll(s.armed, s.pages())
			}
		}
	}
	vm.slots[m.Slot] = s
	vm.publish(old, s)
	vm.syncVCPUs()
	return nil
}

// setAll sets bits [0, n) of an atomic bitmap.
func setAll(b []uint64, n uint64) {
	for i := range b {
		w := ^uint64(0)
		if rem := n - uint64(i)*64; rem < 64 {
			w = 1<<rem - 1
		}
		atomic.OrUint64(&b[i], w)
	}
}

// publish stores a new memMap in which slot old (nil: none) is replaced by
// slot new (nil: none), keeping the GPA order (vm.mu held).
func (vm *VM) publish(old, new *slot) {
	chunks := vm.mm.Load().chunks
	if old != nil {
		chunks = without(chunks, old)
	}
	if new != nil {
		chunks = with(chunks, new)
	}
	vm.mm.Store(&memMap{chunks: chunks})
}

// DeleteMemslot implements hv.VM. When it returns no vCPU touches the
// slot's memory any more, so the caller may unmap it.
func (vm *VM) DeleteMemslot(id uint32) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	old, ok := vm.slots[id]
	if !ok {
		return fmt.Errorf("delete memslot %d: no such slot: %w", id, unix.EINVAL)
	}
	delete(vm.slots, id)
	if old.missing != nil {
		old.missing.unwatch()
	}
	vm.publish(old, nil)
	vm.syncVCPUs()
	return nil
}

// Memslots implements hv.VM.
func (vm *VM) Memslots() []hv.Memslot {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	out := make([]hv.Memslot, 0, len(vm.slots))
	for _, s := range vm.slots {
		out = append(out, s.m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slot < out[j].Slot })
	return out
}

func (vm *VM) slot(id uint32) *slot {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	return vm.slots[id]
}

// GetDirtyLog implements hv.VM (KVM_GET_DIRTY_LOG).
func (vm *VM) GetDirtyLog(id uint32, bitmap []uint64) error {
	s := vm.slot(id)
	var pages uint64
	if s != nil {
		pages = s.pages()
	}
	if need := (pages + 63) / 64; uint64(len(bitmap)) < need || len(bitmap) == 0 {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: bitmap of %d words is short for %d pages: %w", id, len(bitmap), pages, unix.EINVAL)
	}
	if vm.cfg.DirtyRingBytes != 0 && !vm.cfg.DirtyRingWithBitmap {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: VM uses dirty rings: %w", id, unix.ENXIO)
	}
	if s == nil || !s.log {
		return fmt.Errorf("KVM_GET_DIRTY_LOG slot %d: no such slot or logging off: %w", id, unix.ENOENT)
	}
	if vm.cfg.DirtyRingBytes != 0 {
		// The backup bitmap of a ring VM: only pages dirtied outside a
		// vCPU are in it, and write protection belongs to the rings, so
		// collecting just takes the bits.
		for i := range s.dirty {
			if vm.cfg.ManualProtect {
				bitmap[i] = atomic.LoadUint64(&s.dirty[i])
			} else {
				bitmap[i] = atomic.SwapUint64(&s.dirty[i], 0)
			}
		}
		return nil
	}
	if vm.cfg.ManualProtect {
		for i := range s.dirty {
			bitmap[i] = atomic.LoadUint64(&s.dirty[i])
		}
		return nil
	}
	rearmed := false
	for i := range s.dirty {
		w := atomic.SwapUint64(&s.dirty[i], 0)
		bitmap[i] = w
		if w != 0 {
			atomic.OrUint64(&s.armed[i], w)
			rearmed = true
		}
	}
	if rearmed {
		vm.syncVCPUs()
	}
	return nil
}

// ClearDirtyLog implements hv.VM (KVM_CLEAR_DIRTY_LOG): pages whose bit is
// set in bitmap and in the log are cleared from the log and write-protected.
func (vm *VM) ClearDirtyLog(id uint32, first, num uint64, bitmap []uint64) error {
	fail := func(err error, why string) error {
		return fmt.Errorf("KVM_CLEAR_DIRTY_LOG slot %d first %d num %d: %s: %w", id, first, num, why, err)
	}
	if uint64(len(bitmap))*64 < num {
		return fail(unix.EINVAL, fmt.Sprintf("bitmap of %d words is short", len(bitmap)))
	}
	if num > 1<<32-1 {
		return fail(unix.EINVAL, "too many pages")
	}
	if vm.cfg.DirtyRingBytes != 0 && !vm.cfg.DirtyRingWithBitmap {
		return fail(unix.ENXIO, "VM uses dirty rings")
	}
	if id >= MaxMemslots {
		return fail(unix.EINVAL, "slot id out of range")
	}
	if first%64 != 0 {
		return fail(unix.EINVAL, "first page not a multiple of 64")
	}
	s := vm.slot(id)
	if s == nil || !s.log {
		return fail(unix.ENOENT, "no such slot or logging off")
	}
	np := s.pages()
	if first > np || num > np-first || (num < np-first && num%64 != 0) {
		return fail(unix.EINVAL, "range not inside the slot or not a multiple of 64 pages")
	}
	rearmed := false
	for i := uint64(0); i*64 < num; i++ {
		mask := bitmap[i]
		if rem := num - i*64; rem < 64 {
			mask &= 1<<rem - 1
		}
		if mask == 0 {
			continue
		}
		w := first/64 + i
		was := atomic.AndUint64(&s.dirty[w], ^mask)
		if vm.cfg.DirtyRingBytes != 0 {
			continue // backup bitmap: the rings own write protection
		}
		if hit := was & mask; hit != 0 {
			atomic.OrUint64(&s.armed[w], hit)
			rearmed = true
		}
	}
	if rearmed {
		vm.syncVCPUs()
	}
	return nil
}

// ResetDirtyRings implements hv.VM (KVM_RESET_DIRTY_RINGS).
func (vm *VM) ResetDirtyRings() (int, error) {
	if vm.cfg.DirtyRingBytes == 0 {
		return 0, fmt.Errorf("KVM_RESET_DIRTY_RINGS: dirty ring not enabled on this VM: %w", unix.EINVAL)
	}
	vm.mu.Lock()
	vcpus := append([]*VCPU(nil), vm.vcpus...)
	vm.mu.Unlock()
	n := 0
	for _, v := range vcpus {
		n += v.ring.reset(vm)
	}
	if n > 0 {
		vm.syncVCPUs()
	}
	return n, nil
}

// rearm write-protects one page of a slot again (ring reset).
func (vm *VM) rearm(id uint32, off uint64) {
	s := vm.slot(id)
	if s == nil || !s.log || off >= s.pages() {
		return
	}
	atomic.OrUint64(&s.armed[off/64], 1<<(off%64))
}

// SetMissingPageHandler implements hv.VM: pages of the slot that are not
// resident now become "missing", and h fills each on its first touch.
// Pages discarded later through hv.Memory.PunchHole become missing again,
// as with KVM's userfaultfd; host reads of missing pages are not caught
// (KVM's are).
func (vm *VM) SetMissingPageHandler(id uint32, h hv.MissingPageHandler) error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	s := vm.slots[id]
	if s == nil {
		return fmt.Errorf("missing-page handler for slot %d: no such slot: %w", id, unix.EINVAL)
	}
	if h == nil {
		// Removal, as on KVM: the pages stay as they are, and the
		// handler's first error comes back.
		ms := s.missing
		if ms == nil {
			return fmt.Errorf("missing-page handler for slot %d: none to remove: %w", id, unix.EINVAL)
		}
		ms.unwatch()
		ns := *s
		ns.missing = nil
		vm.slots[id] = &ns
		vm.publish(s, &ns)
		vm.syncVCPUs()
		ms.mu.Lock()
		defer ms.mu.Unlock()
		return ms.firstErr
	}
	if s.missing != nil {
		return fmt.Errorf("missing-page handler for slot %d: the slot already has one (remove it with a nil handler first): %w", id, unix.EBUSY)
	}
	res, err := s.m.Memory.Resident(s.m.Offset, s.m.Size)
	if err != nil {
		return fmt.Errorf("missing-page handler for slot %d: %w", id, err)
	}
	ms := &missingState{bits: make([]uint64, (s.pages()+63)/64), handler: h}
	for i, r := range res {
		if !r {
			ms.bits[i/64] |= 1 << (i % 64)
		}
	}
	ns := *s
	ns.missing = ms
	vm.slots[id] = &ns
	vm.publish(s, &ns)
	vm.watchDiscards(ms, s.m)
	vm.syncVCPUs()
	return nil
}

// Attach implements hv.VM.
func (vm *VM) Attach(d hv.Device, regions ...hv.Region) error { return vm.bus.Attach(d, regions...) }

// Detach implements hv.VM.
func (vm *VM) Detach(d hv.Device) error { return vm.bus.Detach(d) }

// ResetDevices implements hv.VM.
func (vm *VM) ResetDevices() error { return vm.bus.Reset() }

// Stats implements hv.VM.
func (vm *VM) Stats() (hv.Stats, error) {
	vm.mu.Lock()
	nslots, nvcpus := len(vm.slots), len(vm.vcpus)
	vm.mu.Unlock()
	return hv.Stats{
		{Name: "dirty_pages", Kind: "cumulative", Values: []uint64{vm.dirtyPages.Load()}},
		{Name: "missing_page_faults", Kind: "cumulative", Values: []uint64{vm.missingFault.Load()}},
		{Name: "code_invalidations", Kind: "cumulative", Values: []uint64{vm.codeInval.Load()}},
		{Name: "memslots", Kind: "instant", Values: []uint64{uint64(nslots)}},
		{Name: "vcpus", Kind: "instant", Values: []uint64{uint64(nvcpus)}},
	}, nil
}

func (vm *VM) isClosed() bool { return vm.closing.Load() }

// Close implements hv.VM. Running vCPUs stop at their next instruction
// boundary (or leave HLT) and their Run returns an error wrapping
// hv.ErrVMClosed; Close returns once none is inside Run, so the caller may
// unmap guest memory. Then devices are closed and vCPUs freed; Memory
// objects stay the caller's.
func (vm *VM) Close() error {
	if vm.closing.Swap(true) {
		return nil
	}
	for _, v := range *vm.running.Load() {
		v.c.poke(attnClose)
		v.c.wakeUp()
	}
	vm.runMu.Lock() // every Run has returned
	defer vm.runMu.Unlock()
	vm.mu.Lock()
	vm.closed = true
	vcpus := vm.vcpus
	vm.vcpus = nil
	for _, s := range vm.slots {
		if s.missing != nil {
			s.missing.unwatch()
		}
	}
	vm.slots = map[uint32]*slot{}
	vm.mm.Store(&memMap{})
	vm.mu.Unlock()
	var errs []error
	for _, v := range vcpus {
		if err := v.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := vm.bus.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
