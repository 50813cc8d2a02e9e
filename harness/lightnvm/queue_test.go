package lightnvm

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

func TestPollQueuesNeverInterrupt(t *testing.T) {
	r := newRig(t, Config{})
	poll := r.ioQueue(1, 32, -1)
	irq := r.ioQueue(2, 32, 3)
	const n = 2000
	mark := r.next
	for i := 0; i < n; i++ {
		r.next = mark // reuse the buffers
		ci := i % 6   // maxoc 6
		grp, pu := ci/4, ci/2%2
		chk := ci % 2 * 2
		s := i / 6 * 4 % 32
		if s == 0 && i >= 6 {
			r.reset(poll, r.lba(grp, pu, chk, 0))
		}
		if st := r.write(poll, r.seq(grp, pu, chk, s, 4)...).Status; st != 0 {
			t.Fatalf("write %d: %v", i, st)
		}
	}
	st := r.dev.Stats()
	if st.Interrupts[1] != 0 {
		t.Fatalf("poll queue raised %d interrupts over %d I/Os", st.Interrupts[1], n)
	}
	for i := 0; i < 10; i++ {
		r.read(irq, r.lba(0, 0, 0, 0))
	}
	if got := r.irq.count(0x43); got != 10 || r.dev.Stats().Interrupts[2] != 10 {
		t.Fatalf("interrupt queue: %d MSIs (stats %d), want 10", got, r.dev.Stats().Interrupts[2])
	}
	if r.irq.count(0x40) == 0 {
		t.Fatal("the admin queue (vector 0) never interrupted")
	}
}

func TestMaskedVectorAndMissingIRQChip(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 8, 5)
	r.w32(RegMSIXTable+5*MSIXEntrySize+12, 1) // mask
	r.read(q, r.lba(0, 0, 0, 0))
	if r.irq.count(0x45) != 0 {
		t.Fatal("masked vector delivered")
	}
	r.w32(RegMSIXTable+5*MSIXEntrySize+12, 0) // unmask: the pending message goes
	if r.irq.count(0x45) != 1 {
		t.Fatalf("pending message on unmask: %d", r.irq.count(0x45))
	}
	// Without an interrupt controller the completions still arrive and
	// the refusals are counted.
	r.irq.err = hv.ErrUnsupported
	if cqe, _ := r.read(q, r.lba(0, 0, 0, 0)); cqe.Status != 0 {
		t.Fatal(cqe.Status)
	}
	if st := r.dev.Stats(); st.InterruptErrors == 0 {
		t.Fatalf("refused MSI not counted: %+v", st)
	}
}

func TestCompletionQueueFullHoldsCompletions(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 4, -1)
	sq := &qpair{id: 1, sq: q.sq, cq: q.cq, size: 4, phase: true}
	// Three commands fill the 4-entry CQ (one slot stays empty); reap,
	// submit three more: all six complete once, in order.
	var got []uint16
	for round := 0; round < 2; round++ {
		for i := 0; i < 3; i++ {
			r.submit(sq, r.vecCmd(IOVectorRead, []uint64{r.lba(0, 0, 0, 0)}, r.alloc(4096)))
		}
		for {
			cqe, ok := r.poll(sq)
			if !ok {
				break
			}
			got = append(got, cqe.CID)
		}
	}
	if len(got) != 6 {
		t.Fatalf("completions %v", got)
	}
	for i, c := range got {
		if c != uint16(i+1) {
			t.Fatalf("completion order %v", got)
		}
	}
}

func TestAdminBadInput(t *testing.T) {
	r := newRig(t, Config{})
	r.ioQueue(1, 8, -1)
	page := r.alloc(4096)
	cases := []struct {
		name string
		cmd  Command
		want Status
	}{
		{"CQ id 0", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 0 | 7<<16, CDW11: 1}, StatusInvalidQID},
		{"CQ id past the maximum", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 65 | 7<<16, CDW11: 1}, StatusInvalidQID},
		{"CQ id in use", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 1 | 7<<16, CDW11: 1}, StatusInvalidQID},
		{"CQ of one entry", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 2, CDW11: 1}, StatusInvalidQSize},
		{"CQ past MQES", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 2 | 4096<<16, CDW11: 1}, StatusInvalidQSize},
		{"CQ not contiguous", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 2 | 7<<16}, StatusInvalidField},
		{"CQ misaligned", Command{Opcode: AdminCreateCQ, PRP1: page + 8, CDW10: 2 | 7<<16, CDW11: 1}, StatusInvalidField},
		{"CQ vector past the table", Command{Opcode: AdminCreateCQ, PRP1: page, CDW10: 2 | 7<<16, CDW11: 3 | 32<<16}, StatusInvalidIntVector},
		{"SQ on a missing CQ", Command{Opcode: AdminCreateSQ, PRP1: page, CDW10: 2 | 7<<16, CDW11: 1 | 9<<16}, StatusInvalidCQ},
		{"SQ on the admin CQ", Command{Opcode: AdminCreateSQ, PRP1: page, CDW10: 2 | 7<<16, CDW11: 1}, StatusInvalidCQ},
		{"SQ id in use", Command{Opcode: AdminCreateSQ, PRP1: page, CDW10: 1 | 7<<16, CDW11: 1 | 1<<16}, StatusInvalidQID},
		{"delete CQ with an SQ", Command{Opcode: AdminDeleteCQ, CDW10: 1}, StatusInvalidQDeletion},
		{"delete the admin SQ", Command{Opcode: AdminDeleteSQ, CDW10: 0}, StatusInvalidQID},
		{"delete a missing SQ", Command{Opcode: AdminDeleteSQ, CDW10: 40}, StatusInvalidQID},
		{"unknown opcode", Command{Opcode: 0x7f}, StatusInvalidOpcode},
		{"2.0 device, 1.2 bad-block table", Command{Opcode: AdminGetBadBlocks, NSID: 1, PRP1: page}, StatusInvalidOpcode},
		{"identify into unbacked memory", Command{Opcode: AdminIdentify, PRP1: 1 << 40, CDW10: CNSController}, StatusDataTransferError},
		{"identify with a misaligned PRP2", Command{Opcode: AdminIdentify, PRP1: page + 8, PRP2: page + 4100, CDW10: CNSController}, StatusDataTransferError},
	}
	for _, c := range cases {
		if got := r.cmd(r.adm, c.cmd).Status; got.Code() != c.want || !got.DNR() {
			t.Errorf("%s: %v, want %v with DNR", c.name, got, c.want)
		}
	}
	// Deleting in the right order works and frees the ids.
	for _, c := range []Command{{Opcode: AdminDeleteSQ, CDW10: 1}, {Opcode: AdminDeleteCQ, CDW10: 1}} {
		if st := r.cmd(r.adm, c).Status; st != 0 {
			t.Fatalf("delete: %v", st)
		}
	}
	r.ioQueue(1, 8, -1)
}

func TestIOBadInput(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 8, -1)
	buf := r.alloc(4096)
	loop := r.alloc(4096)
	// A PRP list whose last entry chains to itself.
	r.ga.Store64(loop+4088, loop+4088)
	cases := []struct {
		name string
		cmd  Command
		want Status
	}{
		{"unknown I/O opcode", Command{Opcode: 0x01, NSID: 1}, StatusInvalidOpcode | StatusDNR},
		{"namespace 2", Command{Opcode: IOVectorRead, NSID: 2, PRP1: buf}, StatusInvalidNamespace | StatusDNR},
		{"LBA list in unbacked memory", Command{Opcode: IOVectorRead, NSID: 1, PRP1: buf, CDW10: 0, CDW11: 1 << 8, CDW12: 3}, StatusDataTransferError | StatusDNR},
		{"write data unbacked", Command{Opcode: IOVectorWrite, NSID: 1, PRP1: 1 << 40}, StatusDataTransferError | StatusDNR},
		{"read data unbacked", Command{Opcode: IOVectorRead, NSID: 1, PRP1: 1 << 40}, StatusDataTransferError | StatusDNR},
		{"PRP list chained to itself", func() Command {
			c := r.vecCmd(IOVectorWrite, r.seq(0, 0, 0, 0, 8), 0)
			c.PRP1, c.PRP2 = buf, loop+4088
			return c
		}(), StatusDataTransferError | StatusDNR},
		{"65 LBAs", Command{Opcode: IOVectorReset, NSID: 1, CDW12: 64}, StatusInvalidField | StatusDNR},
	}
	for _, c := range cases {
		if got := r.cmd(q, c.cmd).Status; got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if c := r.chunk(0, 0, 0); c.State != ChunkFree {
		t.Fatalf("a failed transfer changed the chunk: %v", c)
	}
}

func TestDoorbellAndRegisterBadInput(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 8, -1)
	before := r.dev.Stats()
	r.w32(DoorbellSQ(1), 8)          // == size
	r.w32(DoorbellSQ(1), 0xffffffff) // far past
	r.w32(DoorbellSQ(7), 1)          // no such queue
	r.w32(DoorbellCQ(1), 9)
	r.w32(DoorbellCQ(64), 0)
	after := r.dev.Stats()
	if after.BadDoorbells-before.BadDoorbells != 5 || after.Submitted != before.Submitted {
		t.Fatalf("bad doorbells: %+v", after)
	}
	// Odd sizes and offsets: no panic, reads zero, counted.
	for _, a := range []hv.Access{
		{Offset: RegCC, Data: make([]byte, 1), Write: true},
		{Offset: RegCC + 1, Data: make([]byte, 2)},
		{Offset: RegCAP + 2, Data: make([]byte, 8)},
		{Offset: RegionSize - 1, Data: make([]byte, 1), Write: true},
		{Offset: RegMSIXTable + 3, Data: make([]byte, 4), Write: true},
	} {
		if err := r.dev.Access(&a); err != nil {
			t.Fatalf("access %+v: %v", a, err)
		}
	}
	if err := r.dev.Access(&hv.Access{Region: 1, Data: make([]byte, 4)}); err == nil {
		t.Fatal("access to a region the device does not have")
	}
	// The queue still works.
	if cqe, _ := r.read(q, r.lba(0, 0, 0, 0)); cqe.Status != 0 {
		t.Fatal(cqe.Status)
	}
	// CAP: MQES, CQR, CSS=NVM; 4-byte halves agree with the 8-byte read.
	cap := r.mmio(RegCAP, 8, 0, false)
	if cap&0xffff != MaxQueueEntries-1 || cap&capCQR == 0 || cap&capCSSNVM == 0 {
		t.Fatalf("CAP %#x", cap)
	}
	if lo, hi := r.mmio(RegCAP, 4, 0, false), r.mmio(RegCAP+4, 4, 0, false); lo|hi<<32 != cap {
		t.Fatalf("CAP halves %#x %#x", lo, hi)
	}
}

func TestEnableWithBadAdminQueue(t *testing.T) {
	_, ga := newMemAccess(t)
	d, err := New(ga, nil, Config{Geometry: smallGeometry()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	acc := func(off, v uint64, size int) {
		b := make([]byte, size)
		put(b, v)
		d.Access(&hv.Access{Offset: off, Data: b, Write: true})
	}
	acc(RegAQA, 0, 4) // one-entry queues
	acc(RegASQ, 0x1000, 8)
	acc(RegACQ, 0x2001, 8) // misaligned
	acc(RegCC, CCEnable, 4)
	b := make([]byte, 4)
	d.Access(&hv.Access{Offset: RegCSTS, Data: b})
	if b[0]&CSTSReady != 0 || d.Stats().LastError == "" {
		t.Fatalf("enabled with bad admin queues: csts %#x, error %q", b[0], d.Stats().LastError)
	}
}

// A controller reset with I/O in flight: every fetched command is either
// completed once or dropped (counted aborted), none completes after the
// reset, and the device works again after re-enabling.
func TestControllerResetMidRun(t *testing.T) {
	g := smallGeometry()
	g.ReadTyp, g.ReadMax = 1e6, 20e6
	r := newRig(t, Config{Geometry: g, Timing: true, Seed: 7})
	q := r.ioQueue(1, 128, -1)
	for i := 0; i < 100; i++ {
		r.submit(q, r.vecCmd(IOVectorRead, []uint64{r.lba(0, 0, 0, 0)}, r.alloc(4096)))
	}
	time.Sleep(5 * time.Millisecond)
	seen := map[uint16]int{}
	for {
		cqe, ok := r.poll(q)
		if !ok {
			break
		}
		seen[cqe.CID]++
	}
	r.w32(RegCC, 0) // reset
	snapshot := make([]byte, 128*CQEntrySize)
	r.ga.ReadGPA(q.cq, snapshot)
	time.Sleep(30 * time.Millisecond) // past every latency
	after := make([]byte, 128*CQEntrySize)
	r.ga.ReadGPA(q.cq, after)
	if !bytes.Equal(snapshot, after) {
		t.Fatal("a completion was posted after the controller reset")
	}
	for cid, n := range seen {
		if n != 1 {
			t.Fatalf("cid %d completed %d times", cid, n)
		}
	}
	st := r.dev.Stats()
	if st.Submitted != 100+2 || st.Completed+st.Aborted != st.Submitted {
		t.Fatalf("submitted %d completed %d aborted %d (2 admin): not exactly once", st.Submitted, st.Completed, st.Aborted)
	}
	t.Logf("before the reset %d completed, %d aborted", len(seen), st.Aborted)
	r.enable()
	q = r.ioQueue(1, 16, -1)
	if cqe, _ := r.read(q, r.lba(0, 0, 0, 0)); cqe.Status != 0 {
		t.Fatal(cqe.Status)
	}
}

// Several submitters, each on its own queue pair polling only its own
// completion queue, concurrently: every command completes on its own
// queue with its own data.
func TestConcurrentQueuesPollOwnCQ(t *testing.T) {
	r := newRig(t, Config{})
	const workers = 4
	qs := make([]*qpair, workers)
	bufs := make([]uint64, workers)
	for w := range qs {
		qs[w] = r.ioQueue(w+1, 64, -1)
		bufs[w] = r.alloc(8 * 4096)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var mu sync.Mutex // the rig's allocator and helpers are not concurrent
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			grp, pu := w/2, w%2
			for s := 0; s < 32; s += 4 {
				lbas := r.seq(grp, pu, 0, s, 4)
				for i, l := range lbas {
					r.ga.WriteGPA(bufs[w]+uint64(i)*4096, Pattern(l, 4096))
				}
				mu.Lock()
				c := r.vecCmd(IOVectorWrite, lbas, bufs[w])
				mu.Unlock()
				cid := r.submit(qs[w], c)
				for {
					cqe, ok := r.poll(qs[w])
					if !ok {
						continue
					}
					if cqe.CID != cid || cqe.SQID != uint16(w+1) || cqe.Status != 0 {
						errs <- errors.New("completion on the wrong queue or failed")
					}
					break
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for w := 0; w < workers; w++ {
		if c := r.chunk(w/2, w%2, 0); c.State != ChunkClosed {
			t.Fatalf("worker %d chunk %v", w, c)
		}
	}
}

// Queue depths 1..128: a batch of writes then reads, data verified.
func TestQueueDepthIntegrity(t *testing.T) {
	g := smallGeometry()
	g.Chunks, g.CLBA, g.MaxOC, g.MaxOCPU, g.MWCunit = 64, 512, 256, 64, 0
	for _, qd := range []int{1, 2, 32, 127} {
		r := newRig(t, Config{Geometry: g})
		q := r.ioQueue(1, 128, -1)
		var lbas []uint64
		for i := 0; i < qd; i++ {
			lbas = append(lbas, r.seq(i%2, i/2%2, i/4, 0, 4)...)
		}
		for i := 0; i < qd; i++ {
			buf := r.alloc(4 * 4096)
			for k := 0; k < 4; k++ {
				r.ga.WriteGPA(buf+uint64(k)*4096, Pattern(lbas[4*i+k], 4096))
			}
			r.submit(q, r.vecCmd(IOVectorWrite, lbas[4*i:4*i+4], buf))
		}
		for n := 0; n < qd; {
			if cqe, ok := r.poll(q); ok {
				if cqe.Status != 0 {
					t.Fatalf("qd %d: %v", qd, cqe.Status)
				}
				n++
			}
		}
		bufs := make([]uint64, qd)
		for i := range bufs {
			bufs[i] = r.alloc(4 * 4096)
			r.submit(q, r.vecCmd(IOVectorRead, lbas[4*i:4*i+4], bufs[i]))
		}
		for n := 0; n < qd; {
			if cqe, ok := r.poll(q); ok {
				if cqe.Status != 0 {
					t.Fatalf("qd %d read: %v", qd, cqe.Status)
				}
				n++
			}
		}
		for i, b := range bufs {
			got := make([]byte, 4*4096)
			r.ga.ReadGPA(b, got)
			for k := 0; k < 4; k++ {
				if !bytes.Equal(got[k*4096:(k+1)*4096], Pattern(lbas[4*i+k], 4096)) {
					t.Fatalf("qd %d: command %d sector %d corrupt", qd, i, k)
				}
			}
		}
	}
}

// A guest that submits far more than its completion queue holds, and
// reaps slowly: the controller stops fetching while it owes a queue's
// worth of completions, resumes as slots free up, and completes every
// command once. Regression: it used to fetch everything and
// hold an unbounded backlog.
func TestFetchStopsWhileCompletionsOwed(t *testing.T) {
	for _, timing := range []bool{false, true} {
		g := smallGeometry()
		g.ReadTyp, g.ReadMax = 100_000, 300_000
		r := newRig(t, Config{Geometry: g, Timing: timing})
		// Build a 64-entry SQ on a 4-entry CQ by hand.
		cq, sq := r.alloc(4*CQEntrySize), r.alloc(64*SQEntrySize)
		if st := r.cmd(r.adm, Command{Opcode: AdminCreateCQ, PRP1: cq, CDW10: 1 | 3<<16, CDW11: 1}).Status; st != 0 {
			t.Fatal(st)
		}
		if st := r.cmd(r.adm, Command{Opcode: AdminCreateSQ, PRP1: sq, CDW10: 1 | 63<<16, CDW11: 1 | 1<<16}).Status; st != 0 {
			t.Fatal(st)
		}
		subq := &qpair{id: 1, sq: sq, size: 64, phase: true}
		cqq := &qpair{id: 1, cq: cq, size: 4, phase: true}
		before := r.dev.Stats().Submitted
		buf := r.alloc(4096)
		for i := 0; i < 63; i++ {
			c := r.vecCmd(IOVectorRead, []uint64{r.lba(0, 0, 0, 0)}, buf)
			subq.cid++
			c.CID = subq.cid
			b := c.Encode()
			r.ga.WriteGPA(sq+uint64(i)*SQEntrySize, b[:])
		}
		r.w32(DoorbellSQ(1), 63)
		if fetched := r.dev.Stats().Submitted - before; fetched > 4 {
			t.Fatalf("timing %v: fetched %d commands for a 4-entry CQ nobody reaps", timing, fetched)
		}
		var got []uint16
		for deadline := time.Now().Add(10 * time.Second); len(got) < 63 && time.Now().Before(deadline); {
			if c, ok := r.poll(cqq); ok {
				got = append(got, c.CID)
			}
		}
		if len(got) != 63 {
			t.Fatalf("timing %v: %d of 63 completed", timing, len(got))
		}
		seen := map[uint16]bool{}
		for i, c := range got {
			// Without timing the order is the submission order; media
			// latencies reorder completions, never duplicate them.
			if (!timing && c != uint16(i+1)) || seen[c] || c < 1 || c > 63 {
				t.Fatalf("timing %v: completions %v", timing, got)
			}
			seen[c] = true
		}
	}
}

func TestShutdownNotification(t *testing.T) {
	r := newRig(t, Config{})
	r.w32(RegCC, r.r32(RegCC)|1<<14) // normal shutdown
	if st := r.r32(RegCSTS); st>>2&3 != 2 || st&CSTSReady == 0 {
		t.Fatalf("CSTS %#x after shutdown notification: want SHST complete, still ready", st)
	}
	r.w32(RegCC, 0)
	if st := r.r32(RegCSTS); st != 0 {
		t.Fatalf("CSTS %#x after disable", st)
	}
}

// A report-chunk read may start inside a descriptor (dword aligned): the
// bytes are the log's bytes at that offset.
func TestReportChunkPartialOffsets(t *testing.T) {
	r := newRig(t, Config{})
	q := r.ioQueue(1, 16, -1)
	r.write(q, r.seq(0, 1, 3, 0, 12)...)
	g := r.dev.geo
	full := make([]byte, 0, g.TotalChunks()*ChunkDescriptorSize)
	for i := 0; i < g.TotalChunks(); i++ {
		c, _ := r.dev.Chunk(i)
		d := c.Descriptor()
		full = append(full, d[:]...)
	}
	for _, c := range []struct{ off, n uint32 }{{4, 8}, {28, 40}, {7 * 32, 32}, {uint32(len(full)) - 8, 16}} {
		buf := r.alloc(4096)
		numd := c.n/4 - 1
		cqe := r.cmd(r.adm, Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: buf, CDW10: LogReportChunk | numd<<16, CDW12: c.off})
		if cqe.Status != 0 {
			t.Fatalf("offset %d: %v", c.off, cqe.Status)
		}
		got := make([]byte, c.n)
		r.ga.ReadGPA(buf, got)
		want := make([]byte, c.n) // past the log's end: zeroes
		copy(want, full[c.off:])
		if string(got) != string(want) {
			t.Fatalf("offset %d length %d: % x, want % x", c.off, c.n, got, want)
		}
	}
	if st := r.cmd(r.adm, Command{Opcode: AdminGetLogPage, NSID: 1, PRP1: r.alloc(4096), CDW10: LogReportChunk, CDW12: 2}).Status; st.Code() != StatusInvalidField {
		t.Fatalf("unaligned offset: %v", st)
	}
}
