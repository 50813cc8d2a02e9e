package emu

import (
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv/hvtest"
)

// The shared kit of harness/hv/hvtest: what every backend must do alike.

func TestGuestMemory(t *testing.T)             { hvtest.GuestMemory(t, New(Options{})) }
func TestDeviceExactlyOnce(t *testing.T)       { hvtest.DeviceExactlyOnce(t, New(Options{})) }
func TestInterruptsDeliveredOnce(t *testing.T) { hvtest.InterruptsDeliveredOnce(t, New(Options{})) }
func TestHaltWakes(t *testing.T)               { hvtest.HaltWakes(t, New(Options{})) }
func TestCloseRunningVCPU(t *testing.T)        { hvtest.CloseRunningVCPU(t, New(Options{})) }
func TestUnsupportedCaps(t *testing.T)         { hvtest.UnsupportedCaps(t, New(Options{})) }
