// Package kvm is the real backend of the hv contract: it drives /dev/kvm
// with ioctls (golang.org/x/sys/unix, no cgo) on x86-64.
package kvm

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// Name is the backend name used in flags, labels and reports.
const Name = "kvm"

// DevicePath is the KVM device node.
const DevicePath = "/dev/kvm"

// Options tune how the backend is opened; the zero value is right for most users.
type Options struct {
	// Device overrides DevicePath (tests use it to check error paths).
	Device string
	// SysRoot is the root of /sys for module parameters ("" = "/").
	SysRoot string
}

// Hypervisor is an open /dev/kvm.
type Hypervisor struct {
	fd       int
	mmapSize int
	caps     hv.Caps
	cpuid    []cpuidEntry2
	sysRoot  string

	mu  sync.Mutex
	vms int
}

var _ hv.Hypervisor = (*Hypervisor)(nil)

// Open opens /dev/kvm. A missing device or a permission problem comes back
// as an *hv.UnavailableError whose Reason says what to do about it.
func Open(opt Options) (*Hypervisor, error) {
	path := opt.Device
	if path == "" {
		path = DevicePath
	}
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		switch {
		case errors.Is(err, unix.ENOENT):
			return nil, &hv.UnavailableError{Backend: Name, Reason: path + " does not exist (KVM not loaded, or not exposed to this machine)", Err: err}
		case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
			return nil, &hv.UnavailableError{Backend: Name, Reason: "permission denied on " + path + " (run as root or join the kvm group)", Err: err}
		case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENODEV):
			return nil, &hv.UnavailableError{Backend: Name, Reason: path + " has no driver behind it (virtualization disabled in firmware?)", Err: err}
		}
		return nil, &hv.UnavailableError{Backend: Name, Reason: "cannot open " + path, Err: err}
	}
	h := &Hypervisor{fd: fd, sysRoot: opt.SysRoot}
	if h.sysRoot == "" {
		h.sysRoot = "/"
	}
	v, err := ioctl(fd, kvmGetAPIVersion, 0)
	if err != nil || v != 12 {
		unix.Close(fd)
		return nil, &hv.UnavailableError{Backend: Name, Reason: fmt.Sprintf("KVM_GET_API_VERSION = %d, want 12", v), Err: err}
	}
	sz, err := ioctl(fd, kvmGetVCPUMmapSize, 0)
	if err != nil {
		unix.Close(fd)
		return nil, &hv.UnavailableError{Backend: Name, Reason: "KVM_GET_VCPU_MMAP_SIZE failed", Err: err}
	}
	h.mmapSize = int(sz)
	if h.cpuid, err = h.supportedCPUID(); err != nil {
		unix.Close(fd)
		return nil, &hv.UnavailableError{Backend: Name, Reason: "KVM_GET_SUPPORTED_CPUID failed", Err: err}
	}
	h.caps = h.probeCaps()
	return h, nil
}

// Name implements hv.Hypervisor.
func (h *Hypervisor) Name() string { return Name }

// Caps implements hv.Hypervisor.
func (h *Hypervisor) Caps() hv.Caps { return h.caps }

// Close implements hv.Hypervisor.
func (h *Hypervisor) Close() error {
	if h.fd < 0 {
		return nil
	}
	err := unix.Close(h.fd)
	h.fd = -1
	return err
}

// CheckExtension asks /dev/kvm about capability c (KVM_CHECK_EXTENSION).
func (h *Hypervisor) CheckExtension(c int) int {
	r, err := ioctl(h.fd, kvmCheckExtension, uintptr(c))
	if err != nil {
		return 0
	}
	return int(r)
}

// ModuleParam reads /sys/module/<module>/parameters/<name>, trimmed; ok is
// false when the module or parameter does not exist.
func (h *Hypervisor) ModuleParam(module, name string) (string, bool) {
	b, err := os.ReadFile(h.sysRoot + "sys/module/" + module + "/parameters/" + name)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

// IsPVM reports whether this KVM is kvm-pvm (a PVM guest offering KVM).
func (h *Hypervisor) IsPVM() bool {
	_, err := os.Stat(h.sysRoot + "sys/module/kvm_pvm")
	return err == nil
}

func (h *Hypervisor) probeCaps() hv.Caps {
	c := hv.Caps{Backend: Name}
	c.Set(hv.CapLongMode, true, 0, "")
	nr := h.CheckExtension(capNRVCPUs)
	c.MaxVCPUs = h.CheckExtension(capMaxVCPUs)
	if c.MaxVCPUs == 0 {
		c.MaxVCPUs = nr
	}
	c.Set(hv.CapMultiVCPU, c.MaxVCPUs > 1, uint64(c.MaxVCPUs), fmt.Sprintf("KVM_CAP_MAX_VCPUS=%d", c.MaxVCPUs))
	c.MaxMemslots = h.CheckExtension(capNRMemslots)
	yesno := func(cp hv.Cap, kc int, name string) int {
		v := h.CheckExtension(kc)
		reason := name + "=0"
		if v != 0 {
			reason = fmt.Sprintf("%s=%#x", name, v)
		}
		c.Set(cp, v != 0, uint64(v), reason)
		return v
	}
	yesno(hv.CapReadOnlyMem, capReadonlyMem, "KVM_CAP_READONLY_MEM")
	c.Set(hv.CapDirtyLog, true, 0, "KVM_GET_DIRTY_LOG")
	mp := yesno(hv.CapManualProtect, capManualDirtyLogProtect2, "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2")
	c.Set(hv.CapInitiallySet, mp&dirtyLogInitiallySet != 0, uint64(mp), fmt.Sprintf("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2=%#x", mp))
	ring := h.CheckExtension(capDirtyLogRingAcqRel)
	ringName := "KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
	if ring == 0 {
		ring = h.CheckExtension(capDirtyLogRing)
		ringName = "KVM_CAP_DIRTY_LOG_RING"
	}
	c.DirtyRingMaxBytes = ring
	c.Set(hv.CapDirtyRing, ring > 0, uint64(ring), fmt.Sprintf("%s=%d", ringName, ring))
	gd := yesno(hv.CapGuestDebug, capSetGuestDebug, "KVM_CAP_SET_GUEST_DEBUG")
	gd2 := h.CheckExtension(capSetGuestDebug2)
	if gd2 == 0 && gd != 0 {
		gd2 = guestDbgEnable | guestDbgSingleStep | guestDbgUseSWBP | guestDbgUseHWBP
	}
	c.Set(hv.CapHWBreakpoint, gd2&guestDbgUseHWBP != 0, uint64(gd2), fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=%#x", gd2))
	c.Set(hv.CapSingleStep, gd2&guestDbgSingleStep != 0, uint64(gd2), fmt.Sprintf("KVM_CAP_SET_GUEST_DEBUG2=%#x", gd2))
	yesno(hv.CapStats, capBinaryStatsFD, "KVM_CAP_BINARY_STATS_FD")
	yesno(hv.CapUserSpaceMSR, capX86UserSpaceMSR, "KVM_CAP_X86_USER_SPACE_MSR")
	yesno(hv.CapSignalKick, capImmediateExit, "KVM_CAP_IMMEDIATE_EXIT")
	c.Set(hv.CapMemfd, true, 0, "memfd_create + fallocate(PUNCH_HOLE)")
	c.Features[hv.CapUserfault] = probeUserfaultfd()

	// PMU: the module parameter is the usual reason; CPUID leaf 0xA says
	// what the guest would see.
	pmuVersion := 0
	for _, e := range h.cpuid {
		if e.function == 0xa {
			pmuVersion = int(e.eax & 0xff)
			c.PMU = hv.PMUInfo{Version: pmuVersion, GPCounters: int(e.eax >> 8 & 0xff),
				CounterWidth: int(e.eax >> 16 & 0xff), FixedCounters: int(e.edx & 0x1f)}
		}
	}
	switch p, ok := h.ModuleParam("kvm", "enable_pmu"); {
	case ok && p == "N":
		c.Set(hv.CapPMU, false, 0, "PMU disabled (kvm.enable_pmu=N)")
	case pmuVersion == 0:
		c.Set(hv.CapPMU, false, 0, "no architectural PMU in KVM_GET_SUPPORTED_CPUID leaf 0xA")
	default:
		c.Set(hv.CapPMU, true, uint64(pmuVersion), fmt.Sprintf("architectural PMU v%d, %d counters", pmuVersion, c.PMU.GPCounters))
	}
	if h.IsPVM() {
		c.Set(hv.CapCPL0Native, false, 0, "kvm_pvm: guest CPL0 code runs in KVM's instruction emulator (~1 µs/instruction)")
		c.Set(hv.CapInstructionSet, false, 0, "kvm_pvm: int3, int n and vmcall at CPL0 fail in KVM's emulator")
	} else {
		c.Set(hv.CapCPL0Native, true, 0, "hardware virtualization")
		c.Set(hv.CapInstructionSet, true, 0, "hardware virtualization")
	}
	return c
}

// VMCount is how many VMs of this Hypervisor are open (a leak check for tests).
func (h *Hypervisor) VMCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vms
}
