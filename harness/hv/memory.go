package hv

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// PageSize is the guest and host base page size.
const PageSize = 4096

// Backing chooses where guest memory lives on the host.
type Backing int

// Memory backings. All are real host mappings, so holes, residency and
// userfaultfd behave as the kernel makes them behave, for every backend.
const (
	// Anonymous is private anonymous memory (MAP_PRIVATE|MAP_ANONYMOUS).
	Anonymous Backing = iota
	// AnonymousTHP is anonymous memory advised for transparent huge pages.
	AnonymousTHP
	// Memfd is a shared mapping of a memfd, so holes can be punched with fallocate.
	Memfd
)

func (b Backing) String() string {
	switch b {
	case Anonymous:
		return "anonymous"
	case AnonymousTHP:
		return "anonymous-thp"
	case Memfd:
		return "memfd"
	}
	return fmt.Sprintf("backing(%d)", int(b))
}

// Memory is one host mapping that backs one or more memslots.
type Memory struct {
	b       []byte
	backing Backing
	file    *os.File // Memfd only

	// watchers hear of every PunchHole (see OnDiscard).
	watchMu  sync.Mutex
	watchers map[int]func(off, n uint64)
	nextID   int
}

// NewMemory maps size bytes (a multiple of PageSize) of the given backing.
func NewMemory(size uint64, backing Backing) (*Memory, error) {
	if size == 0 || size%PageSize != 0 {
		return nil, fmt.Errorf("guest memory size %#x: not a positive multiple of %d", size, PageSize)
	}
	m := &Memory{backing: backing}
	var err error
	switch backing {
	case Anonymous, AnonymousTHP:
		m.b, err = unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
		if err != nil {
			return nil, fmt.Errorf("mmap %d bytes anonymous: %w", size, err)
		}
		if backing == AnonymousTHP {
			if err := unix.Madvise(m.b, unix.MADV_HUGEPAGE); err != nil {
				_ = unix.Munmap(m.b)
				return nil, fmt.Errorf("madvise MADV_HUGEPAGE: %w", err)
			}
		}
	case Memfd:
		fd, err := unix.MemfdCreate("kvmspec-guest", unix.MFD_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("memfd_create: %w", err)
		}
		m.file = os.NewFile(uintptr(fd), "kvmspec-guest")
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			m.file.Close()
			return nil, fmt.Errorf("ftruncate memfd to %d: %w", size, err)
		}
		m.b, err = unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			m.file.Close()
			return nil, fmt.Errorf("mmap memfd %d bytes: %w", size, err)
		}
	default:
		return nil, fmt.Errorf("unknown memory backing %d", int(backing))
	}
	return m, nil
}

// Bytes is the host view of the whole mapping.
func (m *Memory) Bytes() []byte { return m.b }

// Size is the mapping's length in bytes.
func (m *Memory) Size() uint64 { return uint64(len(m.b)) }

// Backing says what kind of mapping this is.
func (m *Memory) Backing() Backing { return m.backing }

// Fd is the memfd behind a Memfd mapping, or -1.
func (m *Memory) Fd() int {
	if m.file == nil {
		return -1
	}
	return int(m.file.Fd())
}

// OnDiscard calls fn after every PunchHole of this mapping with the
// discarded range, until the returned cancel is called. A backend that
// tracks residency itself (the emu's missing-page handlers) uses it to see
// a discarded page as missing again, as userfaultfd does on KVM. fn runs
// on the discarding goroutine and must not call PunchHole.
func (m *Memory) OnDiscard(fn func(off, n uint64)) (cancel func()) {
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	if m.watchers == nil {
		m.watchers = map[int]func(off, n uint64){}
	}
	id := m.nextID
	m.nextID++
	m.watchers[id] = fn
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		delete(m.watchers, id)
	}
}

func (m *Memory) discarded(off, n uint64) {
	m.watchMu.Lock()
	fns := make([]func(off, n uint64), 0, len(m.watchers))
	for _, fn := range m.watchers {
		fns = append(fns, fn)
	}
	m.watchMu.Unlock()
	for _, fn := range fns {
		fn(off, n)
	}
}

// PunchHole discards [off, off+n): the pages read back as zero afterwards and
// stop being resident. Anonymous memory uses madvise(MADV_DONTNEED), memfd
// memory fallocate(PUNCH_HOLE) so the file's pages are freed too.
func (m *Memory) PunchHole(off, n uint64) error {
	if err := m.punchHole(off, n); err != nil {
		return err
	}
	m.discarded(off, n)
	return nil
}

func (m *Memory) punchHole(off, n uint64) error {
	if off%PageSize != 0 || n%PageSize != 0 || n == 0 {
		return fmt.Errorf("punch hole [%#x, +%#x): not page aligned", off, n)
	}
	if off > uint64(len(m.b)) || n > uint64(len(m.b))-off {
		return fmt.Errorf("punch hole [%#x, +%#x): beyond the %#x-byte mapping", off, n, len(m.b))
	}
	if m.file != nil {
		if err := unix.Fallocate(m.Fd(), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, int64(off), int64(n)); err != nil {
			return fmt.Errorf("fallocate PUNCH_HOLE [%#x, +%#x): %w", off, n, err)
		}
		return nil
	}
	if err := unix.Madvise(m.b[off:off+n], unix.MADV_DONTNEED); err != nil {
		return fmt.Errorf("madvise MADV_DONTNEED [%#x, +%#x): %w", off, n, err)
	}
	return nil
}

// Resident reports, page by page, whether [off, off+n) is resident (mincore).
func (m *Memory) Resident(off, n uint64) ([]bool, error) {
	if off%PageSize != 0 || off > uint64(len(m.b)) || n > uint64(len(m.b))-off {
		return nil, fmt.Errorf("resident [%#x, +%#x): outside the mapping or unaligned", off, n)
	}
	pages := (n + PageSize - 1) / PageSize
	vec := make([]byte, pages)
	if err := mincore(m.b[off:off+pages*PageSize], vec); err != nil {
		return nil, fmt.Errorf("mincore: %w", err)
	}
	out := make([]bool, pages)
	for i, v := range vec {
		out[i] = v&1 != 0
	}
	return out, nil
}

// Close unmaps the memory. Using it after Close is a bug in the caller.
func (m *Memory) Close() error {
	var errs []error
	if m.b != nil {
		if err := unix.Munmap(m.b); err != nil {
			errs = append(errs, fmt.Errorf("munmap: %w", err))
		}
		m.b = nil
	}
	if m.file != nil {
		if err := m.file.Close(); err != nil {
			errs = append(errs, err)
		}
		m.file = nil
	}
	return errors.Join(errs...)
}
