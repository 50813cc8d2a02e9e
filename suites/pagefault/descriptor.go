package pagefault

import (
	"fmt"
	"strings"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// access is what the guest does to the test page.
type access int

const (
	read    access = iota // mov rax, [page]
	write                 // mov [page], rax
	exec                  // call into code stored in the page
	cmpxchg               // lock cmpxchg [page], rcx
	repStos               // rep stosq over the page's first stosCount quadwords
	readPTE               // a read, then the guest reads its own PTE through an alias
)

var accessNames = [...]string{"read", "write", "exec", "cmpxchg", "rep stos", "read+pte"}

func (a access) String() string { return accessNames[a] }

// writes reports whether the access stores to the page.
func (a access) writes() bool { return a == write || a == cmpxchg || a == repStos }

// target is the guest-physical page the test GVA maps to.
type target int

const (
	onData target = iota // the data slot's first page
	inGap                // unbacked, between the data and page-table slots
	above                // unbacked, above the last slot
)

// pteEdit changes the test page's PTE so the access faults in the guest.
type pteEdit int

const (
	pteOK         pteEdit = iota
	pteNotPresent         // P clear
	pteReadOnly           // R/W clear
	pteSupervisor         // U/S clear (a CPL3 access faults)
	pteNX                 // XD set
)

var pteNames = [...]string{"", "not-present", "read-only", "supervisor", "nx"}

// prep is what the host does before the guest runs.
type prep uint

const (
	clearAD  prep = 1 << iota // clear the PTE's A and D: the walk must set them
	holeData                  // punch a hole in the data page
	holePT                    // punch a hole in the page-table page
	memfd                     // back the data slot with a memfd (holes by fallocate)
)

// paging says which slots get a demand-paging handler.
type paging uint

const (
	pageData paging = 1 << iota
	pagePT
	pageBoth = pageData | pagePT
)

// logged is a dirty-log expectation for one page.
type logged int

const (
	unchecked logged = iota
	inLog
	notInLog
)

func (l logged) String() string {
	return map[logged]string{unchecked: "unchecked", inLog: "in the dirty log", notInLog: "not in the dirty log"}[l]
}

// counts are the events a descriptor expects from one pass of its access.
type counts struct {
	Faults     int // demand-paging handler calls, both slots
	MMIO       int // MMIO exits that are not ucalls
	FailedRuns int // Run errors and internal-error/fail-entry/shutdown exits
	Exceptions int // exceptions the guest IDT caught
}

// desc is one page-fault test case, the x86-64 counterpart of the kernel's
// arm64 page_fault_test struct test_desc.
type desc struct {
	name      string
	access    access
	target    target
	pte       pteEdit
	prep      prep
	dataFlags hv.MemFlags // flags of the data slot
	ptFlags   hv.MemFlags // flags of the page-table slot
	paging    paging
	want      counts
	// Dirty-log checks after the run: the data page, and the page-table
	// page holding the test page's PTE (written by the walk setting A/D).
	dataLog, ptLog logged
	// cpl3Only: the case means nothing with supervisor test code.
	cpl3Only bool
}

// option sets one field of a descriptor; d applies them in order.
type option func(*desc)

func d(name string, a access, opts ...option) desc {
	x := desc{name: name, access: a}
	for _, o := range opts {
		o(&x)
	}
	return x
}

func with(p prep) option    { return func(x *desc) { x.prep |= p } }
func paged(p paging) option { return func(x *desc) { x.paging = p } }
func at(t target) option    { return func(x *desc) { x.target = t } }
func pte(e pteEdit) option  { return func(x *desc) { x.pte = e } }
func onlyCPL3() option      { return func(x *desc) { x.cpl3Only = true } }
func faults(n int) option   { return func(x *desc) { x.want.Faults = n } }
func mmio(n int) option     { return func(x *desc) { x.want.MMIO = n } }
func failed(n int) option   { return func(x *desc) { x.want.FailedRuns = n } }
func excepts(n int) option  { return func(x *desc) { x.want.Exceptions = n } }
func logs(data, pt logged) option {
	return func(x *desc) { x.dataLog, x.ptLog = data, pt }
}
func flags(data, pt hv.MemFlags) option {
	return func(x *desc) { x.dataFlags, x.ptFlags = data, pt }
}

// uffdBoth: holes in both pages, served by handlers on both slots.
func uffdBoth() option {
	return func(x *desc) { x.prep |= holeData | holePT; x.paging = pageBoth }
}
func roBoth() option    { return flags(hv.MemReadOnly, hv.MemReadOnly) }
func logBoth() option   { return flags(hv.MemLogDirty, hv.MemLogDirty) }
func roLogBoth() option { return flags(hv.MemReadOnly|hv.MemLogDirty, hv.MemReadOnly|hv.MemLogDirty) }

// dirtyData: the data page is logged exactly when the access stores.
func dirtyData(a access) logged {
	if a.writes() {
		return inLog
	}
	return notInLog
}

// stosCount is how many quadwords the rep stos access stores.
const stosCount = 4

// descriptors is the table. Defaults: A and D preset in the PTE (the walk
// writes nothing), no holes, no flags, no handlers, nothing expected.
func descriptors() []desc {
	var t []desc
	all := []access{read, write, exec, cmpxchg, repStos, readPTE}

	// Accessed/dirty bits set by the walk, nothing else happening.
	for _, a := range all {
		t = append(t, d("access "+a.String()+" sets A/D", a, with(clearAD)))
	}
	// Holes without handlers: zero on read, repopulated by writes.
	for _, a := range []access{read, write, cmpxchg, repStos, readPTE} {
		t = append(t, d("hole "+a.String(), a, with(holeData)))
	}
	for _, a := range []access{read, write} {
		t = append(t, d("hole memfd "+a.String(), a, with(holeData|memfd)))
	}
	// Demand paging: the data page and its page-table page each fault once.
	for _, a := range all {
		t = append(t, d("uffd "+a.String(), a, uffdBoth(), faults(2)))
	}
	t = append(t,
		d("uffd read sets A/D", read, uffdBoth(), with(clearAD), faults(2)),
		d("uffd memfd write", write, uffdBoth(), with(memfd), faults(2)),
		d("uffd data only read", read, with(holeData), paged(pageData), faults(1)),
	)
	// Dirty logging on both slots: the data page is logged iff written,
	// the page-table page iff the walk had to set A or D.
	for _, a := range []access{read, write, exec, cmpxchg, repStos} {
		t = append(t, d("dirty log "+a.String(), a, logBoth(), logs(dirtyData(a), notInLog)))
	}
	for _, a := range []access{read, write, exec, cmpxchg, repStos} {
		t = append(t, d("dirty log "+a.String()+" sets A/D", a, logBoth(), with(clearAD), logs(dirtyData(a), inLog)))
	}
	// A read through a read-only PTE: nothing may make the page writable.
	t = append(t, d("dirty log read through read-only pte", read, logBoth(), pte(pteReadOnly), logs(notInLog, notInLog)))
	// Demand paging and dirty logging together.
	for _, a := range []access{read, write, exec, cmpxchg} {
		t = append(t, d("uffd and dirty log "+a.String()+" sets A/D", a, uffdBoth(), logBoth(), with(clearAD), faults(2), logs(dirtyData(a), inLog)))
	}
	t = append(t, d("uffd and dirty log rep stos", repStos, uffdBoth(), logBoth(), faults(2), logs(inLog, notInLog)))
	// Read-only slots: reads and fetches work, stores exit as MMIO with the
	// memory unchanged.
	t = append(t,
		d("ro read", read, roBoth()),
		d("ro exec", exec, roBoth()),
		d("ro read+pte", readPTE, roBoth()),
		d("ro write", write, roBoth(), mmio(1)),
		d("ro cmpxchg", cmpxchg, roBoth(), mmio(1)),
		d("ro rep stos", repStos, roBoth(), mmio(stosCount)),
		d("ro data write sets A/D", write, flags(hv.MemReadOnly, 0), with(clearAD), mmio(1)),
	)
	t = append(t,
		d("ro and dirty log read", read, roLogBoth(), logs(notInLog, notInLog)),
		d("ro and dirty log exec", exec, roLogBoth(), logs(notInLog, notInLog)),
		d("ro and dirty log write", write, roLogBoth(), mmio(1), logs(notInLog, notInLog)),
	)
	t = append(t,
		d("ro and uffd read", read, roBoth(), uffdBoth(), faults(2)),
		d("ro and uffd exec", exec, roBoth(), uffdBoth(), faults(2)),
		d("ro and uffd write", write, roBoth(), uffdBoth(), faults(1), mmio(1)),
		d("ro and uffd cmpxchg", cmpxchg, roBoth(), uffdBoth(), faults(2), mmio(1)),
		d("ro and uffd rep stos", repStos, roBoth(), uffdBoth(), faults(1), mmio(stosCount)),
	)
	// Guest page faults through the guest IDT.
	t = append(t,
		d("#PF not-present read", read, pte(pteNotPresent), excepts(1)),
		d("#PF not-present write", write, pte(pteNotPresent), excepts(1)),
		d("#PF read-only write", write, pte(pteReadOnly), excepts(1)),
		d("#PF read-only cmpxchg", cmpxchg, pte(pteReadOnly), excepts(1)),
		d("#PF user read of supervisor page", read, pte(pteSupervisor), excepts(1), onlyCPL3()),
		d("#PF nx exec", exec, pte(pteNX), excepts(1)),
		d("#PF hole in page table read", read, with(holePT), pte(pteOK), excepts(1)),
		// With demand paging the walk still faults the page-table page
		// in, but the data page is never reached.
		d("#PF and uffd not-present read", read, pte(pteNotPresent), uffdBoth(), faults(1), excepts(1)),
		d("#PF and uffd read-only write", write, pte(pteReadOnly), uffdBoth(), faults(1), excepts(1)),
		d("#PF and uffd supervisor read", read, pte(pteSupervisor), uffdBoth(), faults(1), excepts(1), onlyCPL3()),
		d("#PF and uffd nx exec", exec, pte(pteNX), uffdBoth(), faults(1), excepts(1)),
	)
	// Unbacked guest-physical addresses: MMIO exits.
	t = append(t,
		d("unbacked gap read", read, at(inGap), mmio(1)),
		d("unbacked gap write", write, at(inGap), mmio(1)),
		d("unbacked gap cmpxchg", cmpxchg, at(inGap), mmio(2)),
		d("unbacked gap rep stos", repStos, at(inGap), mmio(stosCount)),
		d("unbacked above read", read, at(above), mmio(1)),
		d("unbacked above write", write, at(above), mmio(1)),
		d("unbacked gap exec", exec, at(inGap), failed(1)),
	)
	return t
}

// String describes the case for failure messages and report entries.
func (x desc) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: access=%s target=%d", x.name, x.access, x.target)
	if x.pte != pteOK {
		fmt.Fprintf(&b, " pte=%s", pteNames[x.pte])
	}
	fmt.Fprintf(&b, " prep=%#x data-slot=%s pt-slot=%s paging=%#x want=%+v data-log=%s pt-log=%s",
		uint(x.prep), x.dataFlags, x.ptFlags, uint(x.paging), x.want, x.dataLog, x.ptLog)
	return b.String()
}
