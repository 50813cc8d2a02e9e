package vgpu

// engineLoop runs engine e's workloads in submission order until Close.
func (d *Device) engineLoop(e int) {
	defer d.wg.Done()
	s := d.engines[e]
	for {
		select {
		case <-d.quit:
			return
		case w := <-s.queue:
			d.mu.Lock()
			stale := w.gen != d.gen
			d.mu.Unlock()
			ok := false
			if !stale {
				ok = d.execute(w)
			}
			d.finish(w, ok)
		}
	}
}

// execute runs w's command stream: dwords from w.ctx to the end of its
// page at most, until MI_BATCH_BUFFER_END. It reports false for a fault:
// an unknown command, a truncated one, an unreadable stream or a store
// the guest's memory refuses.
func (d *Device) execute(w workload) bool {
	if w.ctx%4 != 0 {
		d.fault()
		return false
	}
	limit := (SharedPageSize - w.ctx%SharedPageSize) / 4
	read := func(i uint64) (uint32, bool) {
		if i >= limit {
			return 0, false
		}
		v, err := d.engineMem.Load32(w.ctx + 4*i)
		return v, err == nil
	}
	for i := uint64(0); ; {
		dw, ok := read(i)
		if !ok {
			d.fault()
			return false
		}
		switch {
		case dw == MINoop:
			i++
		case dw == MIBatchBufferEnd:
			return true
		case dw == MIUserInterrupt:
			d.raise(IIRUser(w.engine))
			i++
		case dw>>MIOpcodeShift == MIStoreDwordOp && dw&MIStoreDwordLen == MIStoreDwordImm&MIStoreDwordLen:
			lo, ok1 := read(i + 1)
			hi, ok2 := read(i + 2)
			val, ok3 := read(i + 3)
			if !ok1 || !ok2 || !ok3 || d.engineMem.Store32(uint64(hi)<<32|uint64(lo), val) != nil {
				d.fault()
				return false
			}
			i += 4
		default:
			d.fault()
			return false
		}
	}
}

func (d *Device) fault() {
	d.mu.Lock()
	d.setError(ErrEngineFault)
	d.mu.Unlock()
}

// finish ends w exactly once: counted as completed or failed; a legacy
// workload of the current generation also writes a CSB entry and raises
// the context-switch interrupt.
func (d *Device) finish(w workload, ok bool) {
	d.mu.Lock()
	irq := d.finishLocked(w, ok)
	d.mu.Unlock()
	if irq {
		d.deliver()
	}
}

// finishLocked is finish with d.mu held; it reports whether an interrupt
// must be delivered (outside the lock: delivery kicks a vCPU that may be
// waiting for this device).
func (d *Device) finishLocked(w workload, ok bool) bool {
	d.inflight--
	if d.inflight == 0 {
		d.idle.Broadcast()
	}
	s := d.engines[w.engine]
	current := w.gen == d.gen
	if ok {
		d.stats.Completed++
		if current {
			s.completed++
		}
	} else {
		d.stats.Failed++
		if current {
			s.failed++
		}
	}
	if !w.legacy || !current {
		// PV mode has no context-status processing and no
		// context-switch interrupt: that is its point.
		return false
	}
	status := uint64(CtxStatusComplete)
	if len(s.queue) == 0 {
		status |= CtxStatusActiveIdle
	}
	s.csbWrite = (s.csbWrite + 1) % CSBEntries
	s.csb[s.csbWrite] = w.desc&^0xffffffff | status
	d.iir |= IIRCtxSwitch(w.engine)
	d.stats.CtxSwitchIRQs++
	return true
}

// raise latches a user-interrupt bit in RegIIR, counts it and delivers
// the interrupt.
func (d *Device) raise(bit uint32) {
	d.mu.Lock()
	d.iir |= bit
	d.stats.UserIRQs++
	d.mu.Unlock()
	d.deliver()
}

// deliver sends the device's interrupt to its vCPU, if it is wired.
func (d *Device) deliver() {
	if d.irq == nil {
		return
	}
	if err := d.irq.Interrupt(d.irqVCPU, d.vector); err != nil {
		d.mu.Lock()
		d.stats.IRQErrors++
		d.mu.Unlock()
	}
}
