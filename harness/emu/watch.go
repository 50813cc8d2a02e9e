package emu

import "github.com/kvmspec/kvmspec/harness/hv"

// Data breakpoints (DR7 RW = 01 write, 11 read/write). The pages they
// cover are never cached with permissions in the data TLB, so every access
// to them takes the slow path, which checks the breakpoints; a hit is
// reported after the instruction (a trap) through routeDebug.

// watchpoint is one data breakpoint in effect.
type watchpoint struct {
	lo, hi    uint64 // watched linear bytes [lo, hi]
	writeOnly bool   // RW = 01
	bit       uint64 // DR6 B0-B3
	enabled   bool   // L or G set: a hit raises #DB; else it only shows in DR6
}

// effectiveDR returns the breakpoints in effect: the host's with
// DebugUseHWBP (KVM then ignores the guest's), else the guest's.
func (c *cpu) effectiveDR() (dr7 uint64, drs *[4]uint64, host bool) {
	if c.dbg.Flags&(hv.DebugEnable|hv.DebugUseHWBP) == hv.DebugEnable|hv.DebugUseHWBP {
		return c.dbg.DebugReg[7], (*[4]uint64)(c.dbg.DebugReg[:4]), true
	}
	return c.dr7, &c.dr, false
}

// dr7Len maps DR7's LEN field to bytes (10 is 8 bytes in 64-bit mode).
var dr7Len = [4]uint64{1, 2, 8, 4}

// updateWatch recomputes the data breakpoints, and the code pages that
// hold execute breakpoints, after DR0-DR3, DR7 or the host's debug
// settings changed. Code and data on other pages keep the fast path.
func (c *cpu) updateWatch() {
	dr7, drs, host := c.effectiveDR()
	c.watch = c.watch[:0]
	c.bpPages = c.bpPages[:0]
	c.ioWatch = c.ioWatch[:0]
	for i := 0; i < 4; i++ {
		rw := dr7 >> (16 + 4*i) & 3
		if rw == 2 && c.sr.CR4&cr4DE != 0 {
			// An I/O breakpoint (CR4.DE set; undefined without it, and
			// never matching here): DRn holds the port.
			n := dr7Len[dr7>>(18+4*i)&3]
			lo := drs[i] & 0xffff &^ (n - 1)
			c.ioWatch = append(c.ioWatch, watchpoint{lo: lo, hi: lo + n - 1, bit: 1 << i, enabled: dr7>>(2*i)&3 != 0})
			continue
		}
		if dr7>>(2*i)&3 != 0 && rw == 0 {
			c.bpPages = append(c.bpPages, drs[i]>>12)
		}
		if rw != 1 && rw != 3 {
			continue
		}
		// A data breakpoint that is not enabled is watched too when its
		// RW field says so: its condition shows in DR6 when an enabled
		// one raises the #DB (SDM 18.2.3).
		n := dr7Len[dr7>>(18+4*i)&3]
		lo := drs[i] &^ (n - 1)
		c.watch = append(c.watch, watchpoint{lo: lo, hi: lo + n - 1, writeOnly: rw == 1, bit: 1 << i,
			enabled: dr7>>(2*i)&3 != 0})
	}
	c.watchHost = host
	c.flushTLB()
}

// watchedPage reports whether a data breakpoint covers va's page.
func (c *cpu) watchedPage(va uint64) bool {
	for _, w := range c.watch {
		if va>>12 >= w.lo>>12 && va>>12 <= w.hi>>12 {
			return true
		}
	}
	return false
}

// watchAccess records the breakpoints an access of n bytes at va hits.
func (c *cpu) watchAccess(va uint64, n int, write bool) {
	for _, w := range c.watch {
		if va <= w.hi && va+uint64(n)-1 >= w.lo && (write || !w.writeOnly) {
			if w.enabled {
				c.watchHit |= w.bit
			} else {
				c.watchMet |= w.bit
			}
			c.setSlow() // the next boundary reports or forgets it
		}
	}
}

// generalDetect is DR7.GD (SDM 18.2.4): a MOV to or from a debug register
// faults with #DB before it runs, DR6.BD set. With the host's DR7 in
// effect (DebugUseHWBP) the host gets the exit, RIP at the MOV; otherwise
// the guest's #DB clears GD so its handler can use the registers.
func (c *cpu) generalDetect() {
	if dr7, _, host := c.effectiveDR(); host && dr7&dr7GD != 0 {
		c.rip = c.cur
		c.debugExit(vecDB, c.cur, dr6ActiveLow|dr6BD, dr7)
	}
	if c.dr7&dr7GD != 0 && !c.watchHost {
		c.dr6 |= dr6BD | dr6Fixed
		c.dr7 &^= dr7GD
		c.raise(vecDB)
	}
}

// codeBreak checks the execute breakpoints of a code page the fast path
// just looked up: a page that holds one never stays in the code TLB, so
// each of its instructions comes back here and is checked; other pages run
// unchecked. It reports whether a breakpoint was taken (the instruction
// does not run).
func (c *cpu) codeBreak(rip uint64, ce *ctlbEntry) bool {
	for _, pg := range c.bpPages {
		if pg == rip>>12 {
			ce.perm = 0
			return c.execBreakpoint()
		}
	}
	return false
}

// ioBreak records the I/O breakpoints an IN, OUT, INS or OUTS of size
// bytes at port meets; like a data breakpoint it traps after the
// instruction (a REP string one after its first iteration).
func (c *cpu) ioBreak(port uint16, size uint8) {
	lo, hi := uint64(port), uint64(port)+uint64(size)-1
	for _, w := range c.ioWatch {
		if lo <= w.hi && hi >= w.lo {
			if w.enabled {
				c.watchHit |= w.bit
			} else {
				c.watchMet |= w.bit
			}
			c.setSlow()
		}
	}
}
