package kvm

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// KVM's KVM_GUESTDBG_VALID_MASK on x86 since 5.16.
const fullDebugMask = guestDbgEnable | guestDbgSingleStep | guestDbgUseSWBP | guestDbgUseHWBP |
	guestDbgInjectDB | guestDbgInjectBP | guestDbgBlockIRQ

func TestDebugFlagsAreKVMs(t *testing.T) {
	// The contract's flags are passed to KVM as they are: the header
	// check proves guestDbg* are KVM's, this proves hv's are guestDbg*.
	if uint32(hv.DebugFlagsKnown) != fullDebugMask {
		t.Fatalf("hv.DebugFlagsKnown %#x, KVM's x86 set %#x", uint32(hv.DebugFlagsKnown), fullDebugMask)
	}
}

func TestDebugCaps(t *testing.T) {
	all := []hv.Cap{hv.CapSoftwareBP, hv.CapHWBreakpoint, hv.CapWatchpoint, hv.CapSingleStep, hv.CapBlockIRQ, hv.CapDebugInject}
	cases := []struct {
		name  string
		debug bool
		mask  uint32
		no    []hv.Cap
	}{
		{"5.16+ full mask", true, fullDebugMask, nil},
		{"pre-5.16: mask 0, debug present", true, 0, []hv.Cap{hv.CapBlockIRQ}},
		{"no guest debug", false, 0, all},
		{"no sw bp", true, fullDebugMask &^ guestDbgUseSWBP, []hv.Cap{hv.CapSoftwareBP}},
		{"no hw bp: both breakpoints and watchpoints", true, fullDebugMask &^ guestDbgUseHWBP, []hv.Cap{hv.CapHWBreakpoint, hv.CapWatchpoint}},
		{"half of inject", true, fullDebugMask &^ guestDbgInjectBP, []hv.Cap{hv.CapDebugInject}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var caps hv.Caps
			debugCaps(&caps, c.debug, c.mask)
			for _, cp := range all {
				want := !slices.Contains(c.no, cp)
				s := caps.Features[cp]
				if s.OK != want {
					t.Errorf("%s: OK=%v, want %v (%s)", cp, s.OK, want, s.Reason)
				}
				if s.Reason == "" {
					t.Errorf("%s: no reason", cp)
				}
			}
		})
	}
}

func TestCheckDebugFlags(t *testing.T) {
	var caps hv.Caps
	caps.Set(hv.CapGuestDebug, true, 1, "")
	noHW := fullDebugMask &^ guestDbgUseHWBP
	cases := []struct {
		name  string
		mask  uint32
		f     hv.DebugFlags
		want  error
		names []string
	}{
		{"off", noHW, 0, nil, nil},
		{"allowed", fullDebugMask, hv.DebugEnable | hv.DebugSingleStep | hv.DebugBlockIRQ, nil, nil},
		{"unknown flag", fullDebugMask, hv.DebugEnable | 1<<4, unix.EINVAL, nil},
		{"hw bp not offered", noHW, hv.DebugEnable | hv.DebugUseHWBP, hv.ErrUnsupported, []string{"hw-breakpoint", "hw-watchpoint"}},
		{"inject not offered", fullDebugMask &^ guestDbgInjectBP, hv.DebugInjectBP, hv.ErrUnsupported, []string{"guest-debug-inject"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := checkDebugFlags(caps, c.mask, c.f)
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("= %v, want %v", err, c.want)
			}
			for _, n := range c.names {
				if !strings.Contains(err.Error(), n) {
					t.Errorf("error %q does not name %s", err, n)
				}
			}
		})
	}
	if err := checkDebugFlags(hv.Caps{Backend: Name}, fullDebugMask, hv.DebugEnable); !errors.Is(err, hv.ErrUnsupported) {
		t.Fatalf("without KVM_CAP_SET_GUEST_DEBUG: %v", err)
	}
}
