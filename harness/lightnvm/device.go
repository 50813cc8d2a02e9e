package lightnvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Config configures a Device.
type Config struct {
	// Name identifies the device ("ocssd0" by default).
	Name     string
	Geometry Geometry
	Options  Options
	// Backing, when set, is the chunk-state file; sector data lives in
	// Backing+".data". Both survive device reset, Close and a new VM. An
	// existing state file that is corrupt, truncated or from another
	// geometry is an error, never a silent reset.
	Backing string
	// Sync fsyncs the state file before each rename (power-cut safety,
	// not only process-kill safety).
	Sync bool
	// Timing holds each I/O command's completion for a latency drawn
	// uniformly from the geometry's [typical, maximum] of its kind.
	Timing bool
	// Seed seeds the latency draws.
	Seed int64
}

// Stats are the device's counters since it was created.
type Stats struct {
	Submitted uint64 // commands fetched from submission queues
	Completed uint64 // completion entries posted
	Aborted   uint64 // fetched commands a controller reset dropped uncompleted
	// Interrupts counts MSI-X messages sent per completion queue id.
	Interrupts [MaxQueueID + 1]uint64
	// InterruptErrors counts messages the VM refused (no irqchip, bad
	// MSI-X entry).
	InterruptErrors uint64
	// BadDoorbells counts doorbell writes for missing queues or values
	// past the queue's size; they are ignored.
	BadDoorbells uint64
	// BadAccesses counts register accesses of unsupported sizes or offsets.
	BadAccesses uint64
	// LastError is the most recent of the above, or of guest memory
	// errors, described.
	LastError string
}

type subQueue struct {
	id         int
	base       uint64
	size       uint32
	head, tail uint32
	cqid       int
}

type compQueue struct {
	id         int
	base       uint64
	size       uint32
	head, tail uint32
	phase      bool
	ien        bool
	iv         int
	sqs        int          // submission queues feeding it
	backlog    []Completion // waiting for the host to free slots
	delayed    int          // completions the timing model still holds
}

type msixEntry struct {
	addr    uint64
	data    uint32
	masked  bool
	pending bool
}

// Device is the Open-Channel SSD controller. It is safe for concurrent
// use: accesses from several vCPUs and delayed completions serialize on
// one lock.
type Device struct {
	name  string
	mem   hv.GuestMemory
	irq   hv.Interrupts
	geo   Geometry
	state *stateFile

	mu      sync.Mutex
	media   *media
	cc      uint32
	csts    uint32
	aqa     uint32
	asq     uint64
	acq     uint64
	intms   uint32
	sqs     [MaxQueueID + 1]*subQueue
	cqs     [MaxQueueID + 1]*compQueue
	msix    [MSIXVectors]msixEntry
	gen     uint64 // bumped by controller reset: older delayed completions are dropped
	pending map[uint64]int
	rng     *rand.Rand
	stats   Stats
	closed  bool
}

// New creates a device that reaches the guest through mem and irq (irq
// may be nil: then no queue can interrupt). With a Backing file it loads
// the chunk state persisted there.
func New(mem hv.GuestMemory, irq hv.Interrupts, cfg Config) (*Device, error) {
	g, err := cfg.Geometry.Normalize()
	if err != nil {
		return nil, fmt.Errorf("lightnvm: geometry: %w", err)
	}
	for _, ci := range cfg.Options.RandomChunks {
		if ci < 0 || ci >= g.TotalChunks() {
			return nil, fmt.Errorf("lightnvm: random chunk %d out of [0, %d)", ci, g.TotalChunks())
		}
	}
	name := cfg.Name
	if name == "" {
		name = "ocssd0"
	}
	d := &Device{name: name, mem: mem, irq: irq, geo: g, rng: rand.New(rand.NewSource(cfg.Seed)), pending: map[uint64]int{}}
	var data sectorStore = &memStore{}
	if cfg.Backing != "" {
		d.state = &stateFile{path: cfg.Backing, sync: cfg.Sync}
		f, err := os.OpenFile(cfg.Backing+".data", os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lightnvm: open sector data: %w", err)
		}
		data = fileStore{f}
	}
	d.media = newMedia(g, cfg.Options, data)
	if !cfg.Timing {
		d.rng = nil
	}
	if d.state != nil {
		found, err := d.state.load(g, d.media.chunks)
		if err != nil {
			data.Close()
			return nil, err
		}
		d.media.recount()
		if !found {
			if err := d.state.save(g, d.media.chunks); err != nil {
				data.Close()
				return nil, err
			}
		}
	}
	return d, nil
}

// Name implements hv.Device.
func (d *Device) Name() string { return d.name }

// Geometry returns the normalized geometry.
func (d *Device) Geometry() Geometry { return d.geo }

// Stats returns a copy of the counters.
func (d *Device) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// Chunk returns the state of chunk index ci (report-chunk order).
func (d *Device) Chunk(ci int) (Chunk, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ci < 0 || ci >= len(d.media.chunks) {
		return Chunk{}, fmt.Errorf("lightnvm: chunk %d out of [0, %d)", ci, len(d.media.chunks))
	}
	return d.media.chunks[ci], nil
}

// InjectWriteFailure makes the next write covering sector of chunk a
// fail: the chunk closes early (StatusChunkEarlyClose) and its next reset
// takes it offline.
func (d *Device) InjectWriteFailure(a Addr) error {
	return d.inject(a, func(ci int) { d.media.writeFail[ci] = a.Sector })
}

// InjectResetFailure makes the next reset of chunk a take it offline.
func (d *Device) InjectResetFailure(a Addr) error {
	return d.inject(a, func(ci int) { d.media.resetFail[ci] = true })
}

// InjectHighECC makes reads of one sector report StatusReadHighECC (the
// data is still returned).
func (d *Device) InjectHighECC(a Addr) error {
	return d.inject(a, func(ci int) { d.media.highECC[ci] = a.Sector })
}

func (d *Device) inject(a Addr, f func(ci int)) error {
	if a.Group >= d.geo.Groups || a.PU >= d.geo.PUnits || a.Chunk >= d.geo.Chunks || a.Sector >= d.geo.CLBA {
		return fmt.Errorf("lightnvm: inject at %v: outside the geometry", a)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d.geo.ChunkIndex(a))
	return nil
}

// Reset implements hv.Device: a controller reset (queues deleted,
// registers and MSI-X table cleared). Chunk state and data are the
// media's and stay.
func (d *Device) Reset() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.controllerReset()
	d.cc, d.aqa, d.asq, d.acq, d.intms = 0, 0, 0, 0, 0
	d.msix = [MSIXVectors]msixEntry{}
	return nil
}

// Close implements hv.Device.
func (d *Device) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.controllerReset()
	var err error
	if d.state != nil {
		err = d.state.save(d.geo, d.media.chunks)
	}
	return errors.Join(err, d.media.data.Close())
}

// controllerReset deletes every queue; commands whose completion is
// still delayed are dropped (counted in Aborted), never posted later.
func (d *Device) controllerReset() {
	for _, n := range d.pending {
		d.stats.Aborted += uint64(n)
	}
	d.pending = map[uint64]int{}
	d.gen++
	d.sqs = [MaxQueueID + 1]*subQueue{}
	d.cqs = [MaxQueueID + 1]*compQueue{}
	d.csts = 0
}

func (d *Device) fail(format string, args ...any) {
	d.stats.LastError = fmt.Sprintf(format, args...)
}

// Access implements hv.Device.
func (d *Device) Access(a *hv.Access) error {
	if a.Region != 0 {
		return fmt.Errorf("lightnvm: access to region %d, the device has one", a.Region)
	}
	d.mu.Lock()
	var irqs []msixEntry
	if a.Write {
		irqs = d.write(a.Offset, a.Data)
	} else {
		d.read(a.Offset, a.Data)
	}
	d.mu.Unlock()
	d.signal(irqs)
	return nil
}

func le64(b []byte) uint64 {
	var w [8]byte
	copy(w[:], b)
	return binary.LittleEndian.Uint64(w[:])
}

func put(b []byte, v uint64) {
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], v)
	copy(b, w[:])
}

// reg64 serves one half or the whole of a 64-bit register.
func reg64(off, base uint64, size int) (shift uint, ok bool) {
	switch {
	case off == base && (size == 4 || size == 8):
		return 0, true
	case off == base+4 && size == 4:
		return 32, true
	}
	return 0, false
}

func (d *Device) read(off uint64, b []byte) {
	clear(b)
	size := len(b)
	cap := uint64(MaxQueueEntries-1) | capCQR | 1<<capTOShift | capCSSNVM
	for _, r := range []struct {
		base uint64
		v    uint64
	}{{RegCAP, cap}, {RegASQ, d.asq}, {RegACQ, d.acq}} {
		if sh, ok := reg64(off, r.base, size); ok {
			put(b, r.v>>sh)
			return
		}
	}
	if size != 4 {
		d.stats.BadAccesses++
		d.fail("read of %d bytes at %#x", size, off)
		return
	}
	var v uint32
	switch {
	case off == RegVS:
		v = nvmeVS13
	case off == RegINTMS || off == RegINTMC:
		v = d.intms
	case off == RegCC:
		v = d.cc
	case off == RegCSTS:
		v = d.csts
	case off == RegAQA:
		v = d.aqa
	case off >= RegMSIXTable && off < RegMSIXTable+MSIXVectors*MSIXEntrySize:
		e := d.msix[(off-RegMSIXTable)/MSIXEntrySize]
		switch off % MSIXEntrySize {
		case 0:
			v = uint32(e.addr)
		case 4:
			v = uint32(e.addr >> 32)
		case 8:
			v = e.data
		case 12:
			if e.masked {
				v = 1
			}
		}
	}
	// Doorbells and reserved registers read as zero.
	binary.LittleEndian.PutUint32(b, v)
}

func (d *Device) write(off uint64, b []byte) []msixEntry {
	size := len(b)
	v := le64(b)
	for _, r := range []struct {
		base uint64
		p    *uint64
	}{{RegASQ, &d.asq}, {RegACQ, &d.acq}} {
		if sh, ok := reg64(off, r.base, size); ok {
			mask := uint64(1)<<(8*size) - 1
			if size == 8 {
				mask = ^uint64(0)
			}
			*r.p = *r.p&^(mask<<sh) | (v&mask)<<sh
			return nil
		}
	}
	if size != 4 {
		d.stats.BadAccesses++
		d.fail("write of %d bytes at %#x", size, off)
		return nil
	}
	w := uint32(v)
	switch {
	case off == RegCC:
		d.setCC(w)
	case off == RegINTMS:
		d.intms |= w
	case off == RegINTMC:
		d.intms &^= w
	case off == RegAQA:
		d.aqa = w
	case off >= RegDoorbell && off < RegDoorbell+8*(MaxQueueID+1):
		return d.doorbell(off-RegDoorbell, w)
	case off >= RegMSIXTable && off < RegMSIXTable+MSIXVectors*MSIXEntrySize:
		return d.writeMSIX(off-RegMSIXTable, w)
	default:
		// CAP, VS, CSTS and reserved registers ignore writes.
	}
	return nil
}

func (d *Device) writeMSIX(off uint64, w uint32) []msixEntry {
	e := &d.msix[off/MSIXEntrySize]
	switch off % MSIXEntrySize {
	case 0:
		e.addr = e.addr&^0xffffffff | uint64(w)
	case 4:
		e.addr = e.addr&0xffffffff | uint64(w)<<32
	case 8:
		e.data = w
	case 12:
		e.masked = w&1 != 0
		if !e.masked && e.pending {
			e.pending = false
			return []msixEntry{*e}
		}
	}
	return nil
}

// setCC handles CC writes: enabling creates the admin queues, disabling
// resets the controller, a shutdown notification (CC.SHN) makes the chunk
// state durable and reports the shutdown complete (CSTS.SHST = 2).
func (d *Device) setCC(w uint32) {
	was := d.cc&CCEnable != 0
	d.cc = w
	if w&ccSHNMask != 0 {
		if d.state != nil {
			if err := d.state.save(d.geo, d.media.chunks); err != nil {
				d.fail("%v", err)
			}
		}
		d.csts = d.csts&^cstsSHSTMask | cstsSHSTDone
	} else {
		d.csts &^= cstsSHSTMask
	}
	switch now := w&CCEnable != 0; {
	case now && !was:
		sqs, cqs := d.aqa&0xfff+1, d.aqa>>16&0xfff+1
		if sqs < 2 || cqs < 2 || d.asq%pageSize != 0 || d.acq%pageSize != 0 {
			// NVMe leaves the controller not ready; the host times out on
			// CSTS.RDY. Say why.
			d.fail("enable with AQA %#x ASQ %#x ACQ %#x: admin queues need ≥ 2 entries and page-aligned bases", d.aqa, d.asq, d.acq)
			return
		}
		d.cqs[0] = &compQueue{id: 0, base: d.acq, size: cqs, phase: true, ien: true, iv: 0, sqs: 1}
		d.sqs[0] = &subQueue{id: 0, base: d.asq, size: sqs, cqid: 0}
		d.csts |= CSTSReady
	case !now && was:
		d.controllerReset()
	}
}

// doorbell handles a doorbell write at offset off from RegDoorbell.
func (d *Device) doorbell(off uint64, w uint32) []msixEntry {
	qid := int(off / 8)
	if off%8 == 0 {
		q := d.sqs[qid]
		if q == nil || w >= q.size {
			d.stats.BadDoorbells++
			d.fail("SQ %d tail doorbell %d: no such queue or past its size", qid, w)
			return nil
		}
		q.tail = w
		return d.process(q)
	}
	c := d.cqs[qid]
	if c == nil || w >= c.size {
		d.stats.BadDoorbells++
		d.fail("CQ %d head doorbell %d: no such queue or past its size", qid, w)
		return nil
	}
	c.head = w
	var irqs []msixEntry
	for len(c.backlog) > 0 && !c.full() {
		cqe := c.backlog[0]
		c.backlog = c.backlog[1:]
		d.post(c, cqe)
		irqs = d.raise(c, irqs)
	}
	return append(irqs, d.resume(c)...)
}

func (c *compQueue) full() bool { return (c.tail+1)%c.size == c.head }

// owed is how many completions c owes the host beyond its free slots:
// the controller stops fetching commands for c while it owes a queue's
// worth, as a controller does when it has nowhere to put completions, so
// a guest that never reaps cannot make the device hold unbounded state.
func (c *compQueue) owed() int { return len(c.backlog) + c.delayed }

// resume fetches again from the submission queues of c that stopped
// because c owed too much.
func (d *Device) resume(c *compQueue) []msixEntry {
	var irqs []msixEntry
	for _, q := range d.sqs {
		if q != nil && q.cqid == c.id && q.head != q.tail && c.owed() < int(c.size) {
			irqs = append(irqs, d.process(q)...)
		}
	}
	return irqs
}

// outcome is one executed command: its completion, its latency, and
// whether it changed persistent state.
type outcome struct {
	cqe     Completion
	delay   time.Duration
	changed bool
}

// process executes the commands between the queue's head and tail.
func (d *Device) process(q *subQueue) []msixEntry {
	var outs []outcome
	dirty := false
	for q.head != q.tail && d.sqs[q.id] == q {
		if c := d.cqs[q.cqid]; c != nil && c.owed()+len(outs) >= int(c.size) {
			break // resumed when the host frees completion slots
		}
		var raw [SQEntrySize]byte
		at := q.base + uint64(q.head)*SQEntrySize
		q.head = (q.head + 1) % q.size
		d.stats.Submitted++
		var o outcome
		if err := d.mem.ReadGPA(at, raw[:]); err != nil {
			// The CID is unreadable; the completion still tells the host
			// which slot failed through SQ head.
			d.fail("SQ %d entry at %#x: %v", q.id, at, err)
			o.cqe.Status = StatusDataTransferError | StatusDNR
		} else {
			cmd, _ := DecodeCommand(raw[:])
			o = d.execute(q, cmd)
			o.cqe.CID = cmd.CID
		}
		o.cqe.SQID = uint16(q.id)
		o.cqe.SQHead = uint16(q.head)
		dirty = dirty || o.changed
		outs = append(outs, o)
	}
	if dirty && d.state != nil {
		// Durable before any completion is visible: a host never sees a
		// write pointer the file could lose.
		if err := d.state.save(d.geo, d.media.chunks); err != nil {
			d.fail("%v", err)
			for i := range outs {
				if outs[i].changed {
					outs[i].cqe.Status = StatusInternalError | StatusDNR
				}
			}
		}
	}
	var irqs []msixEntry
	for _, o := range outs {
		c := d.cqs[q.cqid]
		if o.delay > 0 && c != nil {
			d.delay(q.cqid, o)
			continue
		}
		if c == nil {
			d.stats.Aborted++ // the queue was deleted by this very batch
			continue
		}
		d.complete(c, o.cqe)
		irqs = d.raise(c, irqs)
	}
	return irqs
}

// delay posts a completion after its latency, unless a controller reset
// came first.
func (d *Device) delay(cqid int, o outcome) {
	gen := d.gen
	d.pending[gen]++
	d.cqs[cqid].delayed++
	time.AfterFunc(o.delay, func() {
		d.mu.Lock()
		if gen != d.gen || d.closed {
			d.mu.Unlock()
			return // counted as aborted by the reset
		}
		d.pending[gen]--
		var irqs []msixEntry
		if c := d.cqs[cqid]; c != nil {
			c.delayed--
			d.complete(c, o.cqe)
			irqs = append(d.raise(c, nil), d.resume(c)...)
		} else {
			d.stats.Aborted++
		}
		d.mu.Unlock()
		d.signal(irqs)
	})
}

// complete posts cqe or queues it behind a full completion queue.
func (d *Device) complete(c *compQueue, cqe Completion) {
	if c.full() || len(c.backlog) > 0 {
		c.backlog = append(c.backlog, cqe)
		return
	}
	d.post(c, cqe)
}

// post writes one completion entry: dwords 0-2 first, then dword 3 with
// the phase bit in one aligned store, so a host polling the phase never
// sees a half-written entry.
func (d *Device) post(c *compQueue, cqe Completion) {
	cqe.Phase = c.phase
	at := c.base + uint64(c.tail)*CQEntrySize
	var b [12]byte
	binary.LittleEndian.PutUint64(b[0:], cqe.Result)
	binary.LittleEndian.PutUint16(b[8:], cqe.SQHead)
	binary.LittleEndian.PutUint16(b[10:], cqe.SQID)
	if err := d.mem.WriteGPA(at, b[:]); err != nil {
		d.fatal("CQ %d entry at %#x: %v", c.id, at, err)
		return
	}
	if err := d.mem.Store32(at+12, cqe.dw3()); err != nil {
		d.fatal("CQ %d entry at %#x: %v", c.id, at, err)
		return
	}
	d.stats.Completed++
	c.tail = (c.tail + 1) % c.size
	if c.tail == 0 {
		c.phase = !c.phase
	}
}

// fatal: the controller cannot post completions; NVMe's answer is
// Controller Fatal Status, which the host resets the controller for.
func (d *Device) fatal(format string, args ...any) {
	d.csts |= 1 << 1 // CSTS.CFS
	d.fail(format, args...)
}

// raise adds c's interrupt to irqs when c interrupts; a masked vector
// becomes pending instead.
func (d *Device) raise(c *compQueue, irqs []msixEntry) []msixEntry {
	if !c.ien {
		return irqs
	}
	e := &d.msix[c.iv]
	d.stats.Interrupts[c.id]++
	if e.masked {
		e.pending = true
		return irqs
	}
	for _, x := range irqs {
		if x.addr == e.addr && x.data == e.data {
			return irqs // one message per vector per batch
		}
	}
	return append(irqs, *e)
}

// signal sends MSI messages, outside the device lock: a kicked vCPU may
// be on its way into Access.
func (d *Device) signal(irqs []msixEntry) {
	for _, e := range irqs {
		var err error
		if d.irq == nil {
			err = errors.New("device has no interrupt path")
		} else {
			err = d.irq.SignalMSI(e.addr, e.data)
		}
		if err != nil {
			d.mu.Lock()
			d.stats.InterruptErrors++
			d.fail("MSI %#x/%#x: %v", e.addr, e.data, err)
			d.mu.Unlock()
		}
	}
}

// latency draws a command's media latency.
func (d *Device) latency(typ, max uint32) time.Duration {
	if d.rng == nil || max == 0 {
		return 0
	}
	ns := int64(typ)
	if max > typ {
		ns += d.rng.Int63n(int64(max-typ) + 1)
	}
	return time.Duration(ns)
}
