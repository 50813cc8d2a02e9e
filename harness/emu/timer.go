package emu

import (
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/lapic"
)

// Guest time. With TimeHost (the default) the TSC follows host monotonic
// time and the local APIC timer is not modelled (its registers read back
// what was written), as before. With TimeInstructions every guest clock
// is one count of cycles, so a guest that measures time does the same on
// every run:
//
//   - A cycle is a retired instruction, the PMU's model (pmu.go: core and
//     reference cycles count what instructions retired counts), plus the
//     cycles a halted vCPU skips (below). The PMU's cycle events count
//     unhalted cycles, as the hardware's do: cycles minus skipped ones.
//   - The TSC reads cycles (plus the IA32_TSC offset); TSCHz is unused.
//   - The APIC timer counts cycles divided by its divide configuration:
//     one-shot and periodic modes (TSC-deadline mode is not offered by
//     CPUID, and the timer stays stopped in it). It expires at the
//     instruction boundary where cycles reach its deadline, found by the
//     PMU's countdown (pmuArm), so nothing is checked per instruction.
//   - HLT with the timer about to wake the vCPU skips straight to the
//     deadline: idle time costs nothing and is the same on every run.
//     Interrupts from devices and the host still arrive in host time.

// TimeSource is what the guest-visible clocks count.
type TimeSource uint8

const (
	// TimeHost: the TSC follows host monotonic time at Options.TSCHz;
	// the APIC timer is not modelled.
	TimeHost TimeSource = iota
	// TimeInstructions: the TSC and the APIC timer advance with retired
	// instructions (and skipped halted time), deterministically.
	TimeInstructions
)

func (t TimeSource) String() string {
	switch t {
	case TimeHost:
		return "host"
	case TimeInstructions:
		return "instructions"
	}
	return "TimeSource(?)"
}

// clock is a vCPU's deterministic time state.
type clock struct {
	idle  uint64 // cycles skipped while halted
	timer apicTimer
}

// apicTimer is the local APIC timer in cycles: it counts down from base,
// one per div cycles since start, and expires at deadline.
type apicTimer struct {
	armed    bool
	periodic bool
	base     uint64 // the count at start
	div      uint64
	start    uint64
	deadline uint64 // start + base*div
}

// LVT timer modes (bits 17-18 of the LVT timer entry).
const (
	lvtTimerModeShift    = 17
	lvtTimerModeMask     = 3 << lvtTimerModeShift
	lvtTimerOneShot      = 0
	lvtTimerPeriodic     = 1 << lvtTimerModeShift
	timerDivideBitsLow   = 3 // divide configuration bits 0-1
	timerDivideBitHigh   = 1 << 3
	timerDivideByOneCode = 7
)

// detTime reports whether guest time counts instructions.
func (c *cpu) detTime() bool { return c.vm.h.opt.Time == TimeInstructions }

// cycles is the vCPU's clock: instructions retired plus skipped idle
// cycles. Inside an instruction it does not count that instruction yet.
func (c *cpu) cycles() uint64 { return c.retired() + c.clk.idle }

// timerDivide is the divisor the divide configuration register selects
// (SDM vol. 3A 11.5.4: bits 0, 1 and 3; 111b divides by 1).
func timerDivide(tdiv uint32) uint64 {
	code := tdiv&timerDivideBitsLow | (tdiv&timerDivideBitHigh)>>1
	if code == timerDivideByOneCode {
		return 1
	}
	return 2 << code
}

// timerCurrent is the current-count register at the executing
// instruction.
func (c *cpu) timerCurrent() uint32 {
	t := &c.clk.timer
	now := c.cycles()
	switch {
	case !t.armed || now >= t.deadline:
		return 0
	case now < t.start:
		return uint32(t.base)
	}
	return uint32(t.base - (now-t.start)/t.div)
}

// timerWritten follows a guest write to a timer register (initial count,
// divide configuration, LVT timer entry). The writing instruction has not
// retired: a count written now starts when it does.
func (c *cpu) timerWritten(off uint32) {
	t := &c.clk.timer
	lvt := c.apic.LVT(lapic.LVTTimer)
	mode := lvt & lvtTimerModeMask
	switch off {
	case lapic.RegTInit:
		init := uint64(c.apic.Read(lapic.RegTInit))
		*t = apicTimer{}
		if init != 0 && (mode == lvtTimerOneShot || mode == lvtTimerPeriodic) {
			div := timerDivide(c.apic.Read(lapic.RegTDiv))
			start := c.cycles() + 1
			*t = apicTimer{armed: true, periodic: mode == lvtTimerPeriodic, base: init, div: div, start: start, deadline: start + init*div}
		}
	case lapic.RegTDiv:
		if t.armed {
			// Go on from the current count at the new rate.
			cur := uint64(c.timerCurrent())
			t.div = timerDivide(c.apic.Read(lapic.RegTDiv))
			t.base, t.start = cur, c.cycles()+1
			t.deadline = t.start + cur*t.div
			if cur == 0 {
				t.deadline = t.start
			}
		}
	default: // the LVT timer entry: its mode
		if mode != lvtTimerOneShot && mode != lvtTimerPeriodic {
			*t = apicTimer{}
		}
		t.periodic = mode == lvtTimerPeriodic
	}
	c.countdownRefresh()
}

// timerLeft is how many more instructions may retire before the timer
// is due (0: no timer armed).
func (c *cpu) timerLeft(now uint64) uint64 {
	t := &c.clk.timer
	if !t.armed {
		return 0
	}
	if t.deadline <= now {
		return 1
	}
	return t.deadline - now
}

// timerCheck fires the timer if cycles reached its deadline (at an
// instruction boundary), and reloads a periodic one. Periods skipped
// meanwhile leave one interrupt, as an edge already pending does.
func (c *cpu) timerCheck() {
	t := &c.clk.timer
	now := c.cycles()
	if !t.armed || now < t.deadline {
		return
	}
	if c.vm.cfg.IRQChip {
		c.raiseLVT(lapic.LVTTimer)
	}
	if !t.periodic {
		*t = apicTimer{}
		return
	}
	t.base = uint64(c.apic.Read(lapic.RegTInit)) // the reload value
	period := t.base * t.div
	if period == 0 {
		*t = apicTimer{}
		return
	}
	t.start = t.deadline + (now-t.deadline)/period*period
	t.deadline = t.start + period
}

// timerSkipIdle is HLT under TimeInstructions: if nothing can wake the
// vCPU before the timer does, the halt lasts until its deadline, so the
// clock jumps there (the HLT itself retires as the last cycle before it).
func (c *cpu) timerSkipIdle() {
	t := &c.clk.timer
	if !c.detTime() || !t.armed || c.wakeable() || c.rflags&hv.FlagIF == 0 ||
		c.apic.LVT(lapic.LVTTimer)&lapic.LVTMasked != 0 || !c.apic.SoftwareEnabled() {
		return
	}
	if end := c.cycles() + 1; t.deadline > end {
		c.clk.idle += t.deadline - end
	}
	c.countdownRefresh()
}

// countdownRefresh re-arms the PMU's instruction countdown (pmuArm),
// which also ends where the timer is due, after the timer changed.
func (c *cpu) countdownRefresh() {
	on := c.pmu.anyLive() || c.clk.timer.armed
	if on && !c.pmuOn {
		c.poke(attnPMU) // a running block goes on one counted instruction at a time (runBlocks)
	}
	c.pmuOn = on
	c.pmuArm()
}
