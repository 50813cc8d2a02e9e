package dirtylog

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
)

// logMode is one way of harvesting dirty pages, the kernel test's -M.
type logMode struct {
	name string
	// caps are what the backend must offer; a spec without them is skipped.
	caps []hv.Cap
	// manual: KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2 with INITIALLY_SET; a
	// harvest is GetDirtyLog then ClearDirtyLog over the whole slot.
	manual bool
	// ring: per-vCPU dirty rings; a harvest walks each ring, then
	// ResetDirtyRings re-protects what was walked.
	ring bool
	// backup: the rings have KVM's backup bitmap for pages dirtied
	// outside vCPU context (host and device writes); a harvest walks the
	// rings, then collects the bitmap with GetDirtyLog, last, as the
	// kernel documents.
	backup bool
}

var (
	modeDirtyLog   = &logMode{name: "dirty-log", caps: []hv.Cap{hv.CapDirtyLog}}
	modeClearLog   = &logMode{name: "clear-log", caps: []hv.Cap{hv.CapDirtyLog, hv.CapManualProtect, hv.CapInitiallySet}, manual: true}
	modeDirtyRing  = &logMode{name: "dirty-ring", caps: []hv.Cap{hv.CapDirtyRing}, ring: true}
	modeRingBackup = &logMode{name: "dirty-ring-with-bitmap", caps: []hv.Cap{hv.CapDirtyRing, hv.CapDirtyRingBitmap}, ring: true, backup: true}

	logModes = []*logMode{modeDirtyLog, modeClearLog, modeDirtyRing, modeRingBackup}
)

func (m *logMode) String() string { return m.name }

// labels are the needs:* labels of the mode's capabilities, so CI can
// select or exclude by feature.
func (m *logMode) labels() Labels {
	var l Labels
	for _, c := range m.caps {
		l = append(l, taxonomy.Needs(c)...)
	}
	return l
}

// require skips the current spec when the backend lacks the mode.
func (m *logMode) require(b *framework.Backend) {
	GinkgoHelper()
	for _, c := range m.caps {
		b.Require(c)
	}
}

// vmConfig is the VM configuration the mode needs; ringBytes is used by
// the ring mode only.
func (m *logMode) vmConfig(ringBytes int) hv.VMConfig {
	switch {
	case m.manual:
		return hv.VMConfig{ManualProtect: true, InitiallySet: true}
	case m.ring:
		return hv.VMConfig{DirtyRingBytes: ringBytes, DirtyRingWithBitmap: m.backup}
	}
	return hv.VMConfig{}
}

// ringEntry is one harvested dirty-ring entry.
type ringEntry struct {
	vcpu   int
	slot   uint32
	offset uint64
}

// tracker harvests the dirty pages of a VM's logged slots in one mode and
// keeps the counts a spec reports. It is used by one goroutine at a time.
type tracker struct {
	mode  *logMode
	vm    hv.VM
	vcpus []hv.VCPU
	// slots maps each logged slot to its size in pages.
	slots map[uint32]uint64

	// Ring totals: entries walked, and entries ResetDirtyRings reported.
	harvested, reset int
	// last is the most recent ring entry walked (the kernel test's
	// dirty_ring_last_page).
	last *ringEntry
	// dups counts ring entries for a page already seen in the same harvest.
	dups int
	// resetCalls counts ResetDirtyRings calls (more than one per harvest
	// when a call is cut short; see resetAll).
	resetCalls, harvests int
}

func newTracker(mode *logMode, vm hv.VM, vcpus []hv.VCPU) *tracker {
	return &tracker{mode: mode, vm: vm, vcpus: vcpus, slots: map[uint32]uint64{}}
}

func (t *tracker) track(slot uint32, pages uint64) { t.slots[slot] = pages }

func (t *tracker) untrack(slot uint32) { delete(t.slots, slot) }

func (t *tracker) sets() map[uint32]*pageSet {
	out := map[uint32]*pageSet{}
	for id, n := range t.slots {
		out[id] = newPageSet(n)
	}
	return out
}

// collect returns, per logged slot, the pages dirtied since the previous
// collection and re-arms logging for them, as the mode does it.
func (t *tracker) collect() (map[uint32]*pageSet, error) {
	if t.mode.ring {
		out, err := t.collectRing(-1)
		if err != nil || !t.mode.backup {
			return out, err
		}
		return out, t.collectBackup(out)
	}
	out := t.sets()
	for id, n := range t.slots {
		bm, err := t.getClear(id, n)
		if err != nil {
			return nil, err
		}
		out[id].addWords(bm)
	}
	return out, nil
}

// collectBackup adds the backup bitmap of each slot in out to its set.
func (t *tracker) collectBackup(out map[uint32]*pageSet) error {
	for id, set := range out {
		bm, err := t.getClear(id, set.pages)
		if err != nil {
			return fmt.Errorf("backup bitmap of slot %d: %w", id, err)
		}
		set.addWords(bm)
	}
	return nil
}

// getClear is one bitmap-mode harvest of one slot.
func (t *tracker) getClear(slot uint32, pages uint64) ([]uint64, error) {
	bm := make([]uint64, bitmapWords(pages))
	if err := t.vm.GetDirtyLog(slot, bm); err != nil {
		return nil, err
	}
	if t.mode.manual {
		if err := t.vm.ClearDirtyLog(slot, 0, pages, bm); err != nil {
			return nil, err
		}
	}
	return bm, nil
}

// collectRing walks the ring of vCPU only (or of every vCPU when only is
// negative), then resets the rings and checks that the reset count equals
// the count walked: KVM resets exactly the entries userspace marked.
func (t *tracker) collectRing(only int) (map[uint32]*pageSet, error) {
	out := t.sets()
	var strays []string
	n := 0
	t.harvests++
	for i, v := range t.vcpus {
		if only >= 0 && i != only {
			continue
		}
		k, err := v.HarvestDirtyRing(func(slot uint32, off uint64) {
			t.last = &ringEntry{vcpu: i, slot: slot, offset: off}
			s, ok := out[slot]
			if !ok || off >= s.pages {
				strays = append(strays, fmt.Sprintf("vcpu %d: slot %d page %d", i, slot, off))
				return
			}
			if s.has(off) {
				t.dups++
			}
			s.add(off)
		})
		if err != nil {
			return nil, err
		}
		n += k
	}
	t.harvested += n
	r, calls, err := resetAll(t.vm, n)
	if err != nil {
		return nil, err
	}
	t.reset += r
	t.resetCalls += calls
	if len(strays) > 0 {
		return out, fmt.Errorf("dirty ring entries for pages that are not in a logged slot: %s", strings.Join(strays, ", "))
	}
	if only < 0 && r != n {
		return out, fmt.Errorf("ResetDirtyRings reset %d entries, %d were harvested", r, n)
	}
	return out, nil
}

// maxIdleResets bounds the ResetDirtyRings calls in a row that reset
// nothing while resetAll still expects entries.
const maxIdleResets = 20

// resetAll resets the dirty rings until want entries are reset, with
// SIGURG blocked (see signal.go), and returns the total and the number of
// ResetDirtyRings calls.
func resetAll(vm hv.VM, want int) (total, calls int, err error) {
	withoutSIGURG(func() { total, calls, err = resetLoop(vm, want) })
	return total, calls, err
}

// resetLoop calls ResetDirtyRings until want entries are reset. One call
// should do: the hv contract says it resets every harvested entry. But
// KVM stops early when a signal is pending and returns the count so far,
// even 0, as success; the entries left are reset by the next call.
func resetLoop(vm hv.VM, want int) (total, calls int, err error) {
	idle := 0
	for calls == 0 || total < want && idle < maxIdleResets {
		n, err := vm.ResetDirtyRings()
		calls++
		if err != nil {
			return total, calls, err
		}
		total += n
		if n == 0 {
			idle++
		} else {
			idle = 0
		}
	}
	return total, calls, nil
}

// prime takes a freshly logged slot to "nothing dirty, everything
// tracked", checking on the way what the mode promises about a new slot:
// an empty log (dirty-log), every page set until the first clear
// (clear-log with INITIALLY_SET), no ring entries (dirty-ring).
func (t *tracker) prime(slot uint32) error {
	pages, ok := t.slots[slot]
	if !ok {
		return fmt.Errorf("prime: slot %d is not tracked", slot)
	}
	switch {
	case t.mode.ring:
		sets, err := t.collectRing(-1)
		if err != nil {
			return err
		}
		if n := sets[slot].count(); n != 0 {
			return fmt.Errorf("a newly logged slot %d has ring entries already: %v", slot, sets[slot])
		}
		if t.mode.backup {
			bm := newPageSet(pages)
			if err := t.collectBackup(map[uint32]*pageSet{slot: bm}); err != nil {
				return err
			}
			if bm.count() != 0 {
				return fmt.Errorf("the backup bitmap of a newly logged slot %d is dirty already: %v", slot, bm)
			}
		}
	case t.mode.manual:
		bm := make([]uint64, bitmapWords(pages))
		if err := t.vm.GetDirtyLog(slot, bm); err != nil {
			return err
		}
		got, all := newPageSet(pages), newPageSet(pages)
		got.addWords(bm)
		for p := uint64(0); p < pages; p++ {
			all.add(p)
		}
		if !got.equal(all) {
			return fmt.Errorf("first GetDirtyLog of a newly logged slot %d with INITIALLY_SET: %s", slot, diff(got, all))
		}
		if err := t.vm.ClearDirtyLog(slot, 0, pages, all.words); err != nil {
			return err
		}
		fallthrough
	default:
		bm := make([]uint64, bitmapWords(pages))
		if err := t.vm.GetDirtyLog(slot, bm); err != nil {
			return err
		}
		got := newPageSet(pages)
		got.addWords(bm)
		if got.count() != 0 {
			what := "a newly logged slot"
			if t.mode.manual {
				what = "after ClearDirtyLog of every page, slot"
			}
			return fmt.Errorf("%s %d is dirty already: %v", what, slot, got)
		}
	}
	return nil
}

// expectSets compares collected sets with the wanted ones; slots not in
// want must be clean.
func expectSets(got map[uint32]*pageSet, want map[uint32]*pageSet) error {
	var ids []uint32
	for id := range got {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var errs []error
	for _, id := range ids {
		w := want[id]
		if w == nil {
			w = newPageSet(got[id].pages)
		}
		if !got[id].equal(w) {
			errs = append(errs, fmt.Errorf("slot %d: harvested %v, want %v: %s", id, got[id], w, diff(got[id], w)))
		}
	}
	return errors.Join(errs...)
}
