package framework

import . "github.com/onsi/ginkgo/v2"

// Area labels: a stable interface users select with --label-filter. Every
// spec carries exactly one, given by the area it is registered under.
var (
	// Smoke is the quick check that a backend runs guests at all.
	Smoke = Label("smoke")
	// DirtyLog covers dirty page tracking: bitmap, clear-log, rings.
	DirtyLog = Label("dirtylog")
	// PageFault covers demand paging, holes, read-only and missing memory.
	PageFault = Label("pagefault")
	// Debug covers breakpoints, watchpoints and single-step.
	Debug = Label("debug")
	// Memslot covers memslot creation, moves, deletion and limits.
	Memslot = Label("memslot")
	// PMU covers performance counters and overflow interrupts.
	PMU = Label("pmu")
	// VGPU covers the paravirtual GPU device model.
	VGPU = Label("vgpu")
	// LightNVM covers the Open-Channel SSD device model.
	LightNVM = Label("lightnvm")
	// PageReport covers free page reporting.
	PageReport = Label("pagereport")
	// Conformance marks differential specs that compare two backends.
	Conformance = Label("conformance")
	// Perf marks measurement specs: Serial, gmeasure, no pass/fail on time.
	Perf = Label("perf")
)

// AreaNames lists the area labels in a stable order.
var AreaNames = []string{"smoke", "dirtylog", "pagefault", "debug", "memslot", "pmu",
	"vgpu", "lightnvm", "pagereport", "conformance", "perf"}

// Other labels.
var (
	// CPL0 marks specs whose test code runs at ring 0.
	CPL0 = Label("cpl0")
	// CPL3 marks specs whose test code runs at ring 3.
	CPL3 = Label("cpl3")
	// KindStress marks long randomized or repeated specs.
	KindStress = Label("kind:stress")
)

// Needs returns the label of a capability a spec requires, so CI can
// select or exclude by hardware feature (needs:dirty-ring).
func Needs(capName string) Labels { return Label("needs:" + capName) }

// BackendLabel is the label of a backend's container ("backend:kvm").
func BackendLabel(name string) string { return "backend:" + name }
