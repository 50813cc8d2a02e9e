// Package host gathers facts about the machine a run happens on and watches
// the host kernel's health while specs run.
//
// Facts end up as report properties, so that a JUnit file read weeks later
// still says which kernel, CPU and KVM module parameters produced it; host
// profiles (package profile) match on them to find the known deviations of
// this class of host.
package host

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Facts describes the host. Every field is best effort: a value the host
// does not expose is left empty, because a report with a gap is more useful
// than no report.
type Facts struct {
	Kernel        string   // uname release, e.g. "6.18.44-fc-v669"
	KernelVersion string   // uname version, e.g. "#1 SMP PREEMPT_DYNAMIC @0"
	Arch          string   // uname machine, e.g. "x86_64"
	Hostname      string   // uname nodename
	CPUModel      string   // "model name" of the first CPU
	CPUVendor     string   // "vendor_id" (x86) or "CPU implementer" (arm64)
	CPUFlags      []string // "flags" (x86) or "Features" (arm64), as listed
	NumCPU        int      // processors listed in /proc/cpuinfo
	MemTotalBytes uint64   // MemTotal of /proc/meminfo
	THP           string   // selected transparent hugepage mode, e.g. "madvise"
	// KVMParams holds module → parameter → value for every module whose
	// name starts with "kvm" (kvm, kvm_intel, kvm_amd, kvm_pvm …).
	KVMParams map[string]map[string]string
	Taint     uint64 // /proc/sys/kernel/tainted
	// DevKVM is "ok" when /dev/kvm opens read-write, else why not
	// (e.g. "missing", "permission denied").
	DevKVM string
}

// Collector reads facts below a root directory. Tests point Root at a fixture
// tree so that every parser runs on known input; the zero value reads the
// live system.
type Collector struct {
	// Root is prepended to /proc, /sys and /dev paths; "" means the real
	// root, which also enables uname(2) for fields the files do not give.
	Root string
}

// Collect returns the facts of the running host. It never fails.
func Collect() Facts { return Collector{}.Collect() }

// Collect returns the facts found below c.Root. It never fails: a missing or
// unreadable file leaves its fields empty.
func (c Collector) Collect() Facts {
	f := Facts{
		Kernel:        c.readLine("/proc/sys/kernel/osrelease"),
		KernelVersion: c.readLine("/proc/sys/kernel/version"),
		Arch:          c.readLine("/proc/sys/kernel/arch"),
		Hostname:      c.readLine("/proc/sys/kernel/hostname"),
		THP:           selectedMode(c.readLine("/sys/kernel/mm/transparent_hugepage/enabled")),
		KVMParams:     c.kvmParams(),
		DevKVM:        c.devKVM(),
	}
	if c.Root == "" {
		c.fillFromUname(&f)
	}
	c.parseCPUInfo(&f)
	c.parseMemInfo(&f)
	if v, err := strconv.ParseUint(c.readLine("/proc/sys/kernel/tainted"), 10, 64); err == nil {
		f.Taint = v
	}
	return f
}

func (c Collector) path(p string) string {
	if c.Root == "" {
		return p
	}
	return filepath.Join(c.Root, filepath.FromSlash(p))
}

// readLine returns the file's first line without surrounding space, or "".
func (c Collector) readLine(p string) string {
	b, err := os.ReadFile(c.path(p))
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSpace(line)
}

// fillFromUname covers kernels older than the /proc/sys/kernel/arch file.
func (c Collector) fillFromUname(f *Facts) {
	var u unix.Utsname
	if unix.Uname(&u) != nil {
		return
	}
	set := func(dst *string, src []byte) {
		if *dst == "" {
			*dst = unix.ByteSliceToString(src)
		}
	}
	set(&f.Kernel, u.Release[:])
	set(&f.KernelVersion, u.Version[:])
	set(&f.Arch, u.Machine[:])
	set(&f.Hostname, u.Nodename[:])
}

// selectedMode picks the bracketed choice of a sysfs multiple-choice file
// such as "always [madvise] never".
func selectedMode(s string) string {
	i := strings.IndexByte(s, '[')
	j := strings.IndexByte(s, ']')
	if i < 0 || j < i {
		return s
	}
	return s[i+1 : j]
}

func (c Collector) parseCPUInfo(f *Facts) {
	file, err := os.Open(c.path("/proc/cpuinfo"))
	if err != nil {
		return
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64*1024), 1024*1024) // flag lines are long
	first := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		switch key {
		case "processor":
			f.NumCPU++
		case "model name":
			first(&f.CPUModel, val)
		case "vendor_id", "CPU implementer":
			first(&f.CPUVendor, val)
		case "flags", "Features":
			if f.CPUFlags == nil {
				f.CPUFlags = strings.Fields(val)
			}
		}
	}
}

func (c Collector) parseMemInfo(f *Facts) {
	b, err := os.ReadFile(c.path("/proc/meminfo"))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return
		}
		n, err := strconv.ParseUint(fields[0], 10, 64)
		if err != nil {
			return
		}
		if len(fields) > 1 && strings.EqualFold(fields[1], "kB") {
			n *= 1024
		}
		f.MemTotalBytes = n
		return
	}
}

func (c Collector) kvmParams() map[string]map[string]string {
	dirs, _ := filepath.Glob(c.path("/sys/module/kvm*/parameters"))
	out := map[string]map[string]string{}
	for _, dir := range dirs {
		module := filepath.Base(filepath.Dir(dir))
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		params := map[string]string{}
		for _, e := range entries {
			if e.IsDir() {
				continue
			}
			// Some parameters are write-only (mode 0200): skip them rather
			// than report an empty value that looks like a real one.
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				continue
			}
			params[e.Name()] = strings.TrimSpace(string(b))
		}
		out[module] = params
	}
	return out
}

func (c Collector) devKVM() string {
	fd, err := unix.Open(c.path("/dev/kvm"), unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err == nil {
		unix.Close(fd)
		return "ok"
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "missing"
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
		return "no driver behind /dev/kvm"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	return err.Error()
}

// Property is one name/value pair of a report's properties.
type Property struct {
	Name  string `json:"name"`  // dotted, e.g. "host.kernel", "kvm.param.kvm.enable_pmu"
	Value string `json:"value"` // as the host shows it
}

// Properties returns the facts as ordered report properties: the host.*
// block first, then one kvm.param.<module>.<param> per module parameter,
// sorted, so two reports diff line by line.
func (f Facts) Properties() []Property {
	taint := strconv.FormatUint(f.Taint, 10)
	if f.Taint != 0 {
		taint += " (" + TaintString(f.Taint) + ")"
	}
	ps := []Property{
		{"host.kernel", f.Kernel},
		{"host.kernel_version", f.KernelVersion},
		{"host.arch", f.Arch},
		{"host.hostname", f.Hostname},
		{"host.cpu", f.CPUModel},
		{"host.cpu_vendor", f.CPUVendor},
		{"host.cpu_virt", f.virtSupport()},
		{"host.cpus", strconv.Itoa(f.NumCPU)},
		{"host.mem_total_bytes", strconv.FormatUint(f.MemTotalBytes, 10)},
		{"host.thp", f.THP},
		{"host.taint", taint},
		{"host.dev_kvm", f.DevKVM},
		{"host.cpu_flags", strings.Join(f.CPUFlags, " ")},
	}
	modules := make([]string, 0, len(f.KVMParams))
	for m := range f.KVMParams {
		modules = append(modules, m)
	}
	sort.Strings(modules)
	for _, m := range modules {
		names := make([]string, 0, len(f.KVMParams[m]))
		for n := range f.KVMParams[m] {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			ps = append(ps, Property{fmt.Sprintf("kvm.param.%s.%s", m, n), f.KVMParams[m][n]})
		}
	}
	return ps
}

// HasFlag reports whether the CPU lists flag.
func (f Facts) HasFlag(flag string) bool {
	for _, x := range f.CPUFlags {
		if x == flag {
			return true
		}
	}
	return false
}

// virtSupport says in one word which hardware virtualisation the CPU offers,
// because "no vmx, but a hypervisor" is what tells a PVM host at a glance.
func (f Facts) virtSupport() string {
	var parts []string
	for _, fl := range []string{"vmx", "svm", "hypervisor"} {
		if f.HasFlag(fl) {
			parts = append(parts, fl)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, " ")
}
