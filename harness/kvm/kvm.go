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
	// UserspaceAPIC makes VMConfig.IRQChip use the userspace APIC model
	// with KVM_INTERRUPT even where KVM offers its in-kernel irqchip, so
	// that path can be tested on any host.
	UserspaceAPIC bool
}

// Hypervisor is an open /dev/kvm.
type Hypervisor struct {
	fd       int
	mmapSize int
	caps     hv.Caps
	sysRoot  string
	// userspaceAPIC is Options.UserspaceAPIC.
	userspaceAPIC bool
	arch          archHypervisor

	mu  sync.Mutex
	vms int
}

var _ hv.Hypervisor = (*Hypervisor)(nil)

// Open opens /dev/kvm. A missing device or a permission problem comes back
// as an *hv.UnavailableError whose Reason says what to do about it.
func Open(opt Options) (*Hypervisor, error) {
	if archUnavailable != "" {
		return nil, &hv.UnavailableError{Backend: Name, Reason: archUnavailable}
	}
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
	h := &Hypervisor{fd: fd, sysRoot: opt.SysRoot, userspaceAPIC: opt.UserspaceAPIC}
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
	if err := h.archOpen(); err != nil {
		unix.Close(fd)
		return nil, err
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
	h.capFromExt(&c, hv.CapReadOnlyMem, capReadonlyMem, "KVM_CAP_READONLY_MEM")
	c.Set(hv.CapDirtyLog, true, 0, "KVM_GET_DIRTY_LOG")
	mp := h.capFromExt(&c, hv.CapManualProtect, capManualDirtyLogProtect2, "KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2")
	c.Set(hv.CapInitiallySet, mp&dirtyLogInitiallySet != 0, uint64(mp), fmt.Sprintf("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2=%#x", mp))
	ring := h.CheckExtension(capDirtyLogRingAcqRel)
	ringName := "KVM_CAP_DIRTY_LOG_RING_ACQ_REL"
	if ring == 0 {
		ring = h.CheckExtension(capDirtyLogRing)
		ringName = "KVM_CAP_DIRTY_LOG_RING"
	}
	c.DirtyRingMaxBytes = ring
	c.Set(hv.CapDirtyRing, ring > 0, uint64(ring), fmt.Sprintf("%s=%d", ringName, ring))
	h.capFromExt(&c, hv.CapStats, capBinaryStatsFD, "KVM_CAP_BINARY_STATS_FD")
	h.capFromExt(&c, hv.CapSignalKick, capImmediateExit, "KVM_CAP_IMMEDIATE_EXIT")
	c.Set(hv.CapMemfd, true, 0, "memfd_create + fallocate(PUNCH_HOLE)")
	c.Features[hv.CapUserfault] = probeUserfaultfd()
	c.Set(hv.CapGuestMemoryTrack, true, 0, "host writes to dirty-logged slots are tracked in a per-slot bitmap and merged into GetDirtyLog (KVM never sees them)")
	c.Features[hv.CapDirtyRingBitmap] = dirtyRingBitmapSupport(ring, h.CheckExtension(capDirtyLogRingWithBitmap))
	h.archCaps(&c)
	return c
}

// capFromExt records capability cp as KVM_CHECK_EXTENSION(kc) answers,
// with the answer as its value and reason, and returns the answer.
func (h *Hypervisor) capFromExt(c *hv.Caps, cp hv.Cap, kc int, name string) int {
	v := h.CheckExtension(kc)
	reason := name + "=0"
	if v != 0 {
		reason = fmt.Sprintf("%s=%#x", name, v)
	}
	c.Set(cp, v != 0, uint64(v), reason)
	return v
}

// dirtyRingBitmapSupport says whether VMConfig.DirtyRingWithBitmap can be
// offered, from KVM_CHECK_EXTENSION's answers for the ring and for
// KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP.
func dirtyRingBitmapSupport(ring, withBitmap int) hv.Support {
	switch {
	case ring <= 0:
		return hv.Support{Reason: "no dirty ring (KVM_CAP_DIRTY_LOG_RING and KVM_CAP_DIRTY_LOG_RING_ACQ_REL are 0)"}
	case withBitmap <= 0:
		return hv.Support{Reason: "KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP not offered (x86 KVM dirties no page outside vCPU context)"}
	}
	return hv.Support{OK: true, Value: uint64(withBitmap), Reason: fmt.Sprintf("KVM_CAP_DIRTY_LOG_RING_WITH_BITMAP=%d", withBitmap)}
}

// VMCount is how many VMs of this Hypervisor are open (a leak check for tests).
func (h *Hypervisor) VMCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.vms
}
