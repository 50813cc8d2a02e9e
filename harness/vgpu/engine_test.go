package vgpu

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// streamAt writes cmds as a command stream at ctx.
func (r *rig) streamAt(ctx uint64, cmds ...uint32) {
	r.t.Helper()
	for i, v := range cmds {
		r.store32(ctx+uint64(4*i), v)
	}
}

// submitPV submits one context on engine e the PV way.
func (r *rig) submitPV(e int, ctx uint64) {
	r.t.Helper()
	area := r.fillSub(sharedPA, e, [Ports]uint64{desc(ctx, 1), 0}, [Ports]uint64{ctx, 0})
	r.w32(uint64(Engines[e].Base+RegELSP), PVCmdSubmitWorkload)
	if r.byteAt(area) != 0 {
		r.t.Fatalf("engine %d: submission refused (error %d)", e, r.d.Error())
	}
}

func TestEngineCommandStreams(t *testing.T) {
	cases := []struct {
		name   string
		cmds   []uint32
		at     uint64 // offset of the stream in its page
		ok     bool
		stores map[uint64]uint32
		irqs   int
	}{
		{"store and end", []uint32{MIStoreDwordImm, seqPA, 0, 42, MIBatchBufferEnd}, 0, true, map[uint64]uint32{seqPA: 42}, 0},
		{"noops, two stores, user interrupt", []uint32{MINoop, MIStoreDwordImm, seqPA, 0, 1, MIStoreDwordImm | MIStoreDwordGGTT, seqPA + 8, 0, 2, MIUserInterrupt, MIBatchBufferEnd},
			0, true, map[uint64]uint32{seqPA: 1, seqPA + 8: 2}, 1},
		{"unknown command", []uint32{0x7a000004, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store with a wrong length", []uint32{MIStoreDwordImm + 1, seqPA, 0, 1, 0, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store to a hole", []uint32{MIStoreDwordImm, holePage, 0, 1, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store to read-only memory", []uint32{MIStoreDwordImm, roPage, 0, 1, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store misaligned", []uint32{MIStoreDwordImm, seqPA + 2, 0, 1, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store above 4 GiB", []uint32{MIStoreDwordImm, 0, 1, 1, MIBatchBufferEnd}, 0, false, nil, 0},
		{"store truncated by the page end", []uint32{MIStoreDwordImm, seqPA, 0}, hv.PageSize - 12, false, nil, 0},
		{"no end before the page end", []uint32{MINoop, MINoop}, hv.PageSize - 8, false, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.setup(sharedPA, PVSubmission, 0)
			ctx := uint64(ctxPA) + c.at
			r.streamAt(ctx, c.cmds...)
			if c.at != 0 {
				// The next page holds a valid end: the engine must not run into it.
				r.streamAt(ctxPA+hv.PageSize, MIBatchBufferEnd)
			}
			r.submitPV(1, ctx)
			r.drain()
			st := r.d.Stats()
			if (st.Completed == 1) != c.ok || st.Completed+st.Failed != 1 {
				t.Fatalf("stats %+v, want ok=%v", st, c.ok)
			}
			if !c.ok && r.d.Error() != ErrEngineFault {
				t.Fatalf("error %d, want ErrEngineFault", r.d.Error())
			}
			for gpa, v := range c.stores {
				if got := r.load32(gpa); got != v {
					t.Errorf("%#x = %d, want %d", gpa, got, v)
				}
			}
			if r.irq.count() != c.irqs || st.UserIRQs != uint64(c.irqs) {
				t.Fatalf("%d interrupts delivered, %d counted, want %d", r.irq.count(), st.UserIRQs, c.irqs)
			}
			if c.irqs > 0 && r.r32(RegIIR) != IIRUser(1) {
				t.Fatalf("IIR %#x", r.r32(RegIIR))
			}
			want := uint32(0)
			if c.ok {
				want = 1
			}
			if r.r32(RegCompleted+RegEngStride) != want || r.r32(RegFailed+RegEngStride) != 1-want {
				t.Fatal("engine counters disagree")
			}
		})
	}
}

// Device writes are host writes through GuestMemory: they reach the dirty
// log like a vCPU's (the version words, the CTB head/fence/status, the
// submitted byte and the engines' stores).
func TestDeviceWritesDirtyPages(t *testing.T) {
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, 0)
	ctx := r.context(0, seqPA, 5, false)
	r.dmu.Lock()
	r.dirty = map[uint64]bool{}
	r.dmu.Unlock()
	r.submitPV(0, ctx)
	r.drain()
	r.dmu.Lock()
	defer r.dmu.Unlock()
	for _, p := range []uint64{sharedPA / hv.PageSize, seqPA / hv.PageSize} {
		if !r.dirty[p] {
			t.Errorf("page %#x not dirty; dirty: %v", p, r.dirty)
		}
	}
}

// Several vCPUs submit on different engines at once; each submission runs
// exactly once on its engine.
func TestConcurrentEngines(t *testing.T) {
	const per = 200
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, 0)
	var wg sync.WaitGroup
	errs := make(chan error, len(Engines))
	for _, e := range Engines {
		wg.Add(1)
		go func(e Engine) {
			defer wg.Done()
			ctx := uint64(ctxPA + e.ID*hv.PageSize)
			slot := uint64(seqPA + 4*e.ID)
			for i := 1; i <= per; i++ {
				// Each stream stores its own sequence number: wait for the
				// previous one before rewriting the context.
				for r.load32(slot) != uint32(i-1) {
					time.Sleep(time.Microsecond)
				}
				r.streamAt(ctx, MIStoreDwordImm, uint32(slot), 0, uint32(i), MIBatchBufferEnd)
				area := r.fillSub(sharedPA, e.ID, [Ports]uint64{desc(ctx, uint32(i)), 0}, [Ports]uint64{ctx, 0})
				if err := r.d.Access(&hv.Access{VCPU: e.ID, Offset: uint64(e.Base + RegELSP), Data: []byte{PVCmdSubmitWorkload, 0, 0, 0}, Write: true}); err != nil {
					errs <- err
					return
				}
				if r.byteAt(area) != 0 {
					errs <- fmt.Errorf("engine %s submission %d refused", e.Name, i)
					return
				}
			}
		}(e)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r.drain()
	st := r.d.Stats()
	if want := uint64(per * len(Engines)); st.Completed != want || st.Failed != 0 || st.PVSubmits != want {
		t.Fatalf("stats %+v, want %d completed", st, want)
	}
	for _, e := range Engines {
		if got := r.load32(uint64(seqPA + 4*e.ID)); got != per {
			t.Errorf("engine %s last sequence %d", e.Name, got)
		}
	}
}

// A reset with work in flight completes or fails every workload exactly
// once, and the device comes back in its power-on state.
func TestResetWithWorkInFlight(t *testing.T) {
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, 0)
	// A long stream: a page of stores to one word.
	var cmds []uint32
	for len(cmds)+5 < hv.PageSize/4 {
		cmds = append(cmds, MIStoreDwordImm, seqPA, 0, uint32(len(cmds)))
	}
	cmds = append(cmds, MIBatchBufferEnd)
	r.streamAt(ctxPA, cmds...)
	const n = 40
	for i := 0; i < n; i++ {
		r.submitPV(i%len(Engines), ctxPA)
	}
	if err := r.d.Reset(); err != nil {
		t.Fatal(err)
	}
	// No drain: every workload has ended when Reset returns (a workload
	// an engine had taken off its queue but not yet started once escaped).
	st := r.d.Stats()
	if st.Workloads != n || st.Completed+st.Failed != n {
		t.Fatalf("after reset: %+v", st)
	}
	t.Logf("reset with %d in flight: %d completed, %d failed", n, st.Completed, st.Failed)
	if r.r32(PVInfoBase+OffPVCaps) != HostPVCaps || r.r64(PVInfoBase+OffSharedPage) != 0 || r.d.subSet {
		t.Fatal("reset left PV state behind")
	}
	// PV submission needs negotiation and registration again.
	r.w32(uint64(Engines[0].Base+RegELSP), PVCmdSubmitWorkload)
	if r.d.Error() != ErrSubmitNoArea {
		t.Fatalf("submit after reset: error %d", r.d.Error())
	}
}

// A full engine queue fails the workload at once rather than blocking
// the vCPU.
func TestQueueFull(t *testing.T) {
	r := newRig(t)
	d, err := New(Config{Memory: r.ga, QueueDepth: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Stop the engines so nothing is taken off the queue.
	d.Close()
	d.mu.Lock()
	d.closed = false
	d.queue(workload{engine: 0, ctx: ctxPA})
	d.queue(workload{engine: 0, ctx: ctxPA})
	d.mu.Unlock()
	if st := d.Stats(); st.Failed != 1 || d.Error() != ErrQueueFull {
		t.Fatalf("stats %+v error %d", st, d.Error())
	}
	d.failQueued(0)
	if st := d.Stats(); st.Failed != 2 || st.Workloads != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// Interrupts the VM refuses (no irqchip) are counted, not fatal.
func TestInterruptRefused(t *testing.T) {
	r := newRig(t)
	r.irq.fail = true
	r.setup(sharedPA, 0, 0)
	ctx := r.context(0, seqPA, 1, true)
	r.elsp(0, desc(ctx, 1), 0)
	r.drain()
	if st := r.d.Stats(); st.IRQErrors != 2 || st.Completed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestNewAndAccessErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without memory")
	}
	r := newRig(t)
	if _, err := New(Config{Memory: r.ga, IRQ: r.irq, Vector: 3}); err == nil {
		t.Fatal("New with a reserved vector")
	}
	bad := []hv.Access{
		{Region: 1, Offset: 0, Data: make([]byte, 4)},
		{Offset: BAR0Size - 2, Data: make([]byte, 4)},
		{Offset: 0, Data: make([]byte, 3)},
		{Offset: ^uint64(0), Data: make([]byte, 1)},
	}
	for _, a := range bad {
		if err := r.d.Access(&a); err == nil {
			t.Errorf("access %+v accepted", a)
		}
	}
	if err := r.d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}
