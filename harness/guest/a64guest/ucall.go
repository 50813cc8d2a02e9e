package a64guest

import (
	"errors"
	"fmt"
	"sync"

	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// The ucall ABI on arm64, as the kernel selftests do it: the guest fills
// a ucall record (guest.UcallRecordSize bytes: command, site, argument
// count, arguments; the x86 runtime's layout) and stores its virtual
// address, 8 bytes, to the unbacked page UcallMMIOGPA. The store is an
// MMIO write exit; the host translates the address through the guest's
// own page tables, reads the record by guest-physical address and parses
// it. Everything about the exit and the record is guest-controlled: a
// wrong access size or direction, an unaligned or unmapped address, a
// record across a page boundary or in unbacked memory, an unknown command,
// a site the host never issued or a bad argument count is an error
// (*guest.UcallError), never a panic.

// isUcallExit reports whether exit touched the ucall page; the access is
// checked by decodeUcall.
func isUcallExit(exit hv.Exit) (*hv.MMIOExit, bool) {
	e, ok := exit.(*hv.MMIOExit)
	if !ok || e.GPA < UcallMMIOGPA || e.GPA-UcallMMIOGPA >= ucallWindow {
		return nil, false
	}
	return e, true
}

// ucallWindow is the smallest page the ucall page is mapped with; any
// access inside it is meant as a ucall (and checked as one).
const ucallWindow = 4096

// decodeUcall decodes the ucall exit e of vCPU vcpu. w translates the
// record's address (its Mem reads the record too).
func decodeUcall(e *hv.MMIOExit, vcpu int, w *Walker, site func(uint64) *guest.Site) (*guest.Ucall, error) {
	bad := func(field string, v uint64, why string) error {
		return &guest.UcallError{VCPU: vcpu, Field: field, Value: v, Reason: why}
	}
	switch {
	case e.GPA != UcallMMIOGPA:
		return nil, bad("MMIO address", e.GPA, fmt.Sprintf("the ucall is a store to %#x", UcallMMIOGPA))
	case !e.Write:
		return nil, bad("MMIO read of", uint64(e.Len), "the ucall is an 8-byte store")
	case e.Len != 8 || len(e.Data) != 8:
		return nil, bad("MMIO store size", uint64(e.Len), "the ucall is an 8-byte store")
	}
	ptr := e.Value()
	if ptr%8 != 0 {
		return nil, bad("record address", ptr, "not 8-byte aligned")
	}
	g := w.Mode.Granule.Size()
	if ptr%g > g-guest.UcallRecordSize {
		return nil, bad("record address", ptr, fmt.Sprintf("the %d-byte record crosses a %v page boundary", guest.UcallRecordSize, w.Mode.Granule))
	}
	tr, err := w.Translate(ptr, Access{EL: 1})
	if err != nil {
		return nil, bad("record address", ptr, err.Error())
	}
	b := make([]byte, guest.UcallRecordSize)
	if err := w.Mem.ReadGPA(tr.PA, b); err != nil {
		return nil, bad("record address", ptr, fmt.Sprintf("guest-physical %#x: %v", tr.PA, err))
	}
	return guest.ParseUcallRecord(b, vcpu, unhandledArgs, site)
}

// sites are the ucall sites a guest's programs and handlers were issued.
type sites struct {
	mu   sync.Mutex
	list []*guest.Site
	errs []error // errors recorded while emitting code
}

func (s *sites) add(cmd guest.UcallCmd, file string, line int, msg, format string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	site := &guest.Site{ID: uint64(len(s.list) + 1), Cmd: cmd, File: file, Line: line, Msg: msg, Format: format}
	s.list = append(s.list, site)
	return site.ID
}

func (s *sites) get(id uint64) *guest.Site {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id == 0 || id > uint64(len(s.list)) {
		return nil
	}
	return s.list[id-1]
}

func (s *sites) recordErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, err)
}

func (s *sites) pending() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.errs...)
}
