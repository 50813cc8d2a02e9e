// Package lightnvm checks the Open-Channel SSD device model
// (harness/lightnvm) behind its NVMe queues, driven by a guest driver on
// each backend: queue setup, identify and geometry, the report-chunk
// log, vector I/O with data verified over queue depths 1-128, completion
// by polling (no interrupt ever, over many I/Os) and by MSI, several vCPUs
// each on its own queue pair polling only its own completion queue (the
// per-submitter poll context of bio polling), a controller reset in the
// middle of a run (every command completed or dropped, exactly once), a
// vCPU that leaves with I/O in flight, and the sysfs tree of every shipped
// geometry. The performance specs report completions per second and the
// time per I/O, polled and interrupt-driven, at QD1 and QD32, as report
// entries: nothing is asserted on a timing.
//
// The OCSSD chunk rules themselves (the ten checks of devices.md (b)) are
// table-driven unit tests of harness/lightnvm: they need no guest.
//
// Specs run at CPL3 (the driver needs no privilege: the register block is
// mapped user-accessible) on every backend; interrupt specs need the
// irqchip and MSI capabilities and skip without them.
package lightnvm

import (
	"context"
	"encoding/binary"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	nvm "github.com/kvmspec/kvmspec/harness/lightnvm"
	"github.com/kvmspec/kvmspec/suites/framework"
	"github.com/kvmspec/kvmspec/suites/taxonomy"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gmeasure"
)

// Parameters (kvmspec run --param name=value).
const (
	// ParamPerfSamples is how many times each perf configuration runs.
	ParamPerfSamples = "lightnvm.perf.samples"
	// ParamPerfRounds is how many 128-command rounds one perf sample reads.
	ParamPerfRounds = "lightnvm.perf.rounds"
)

func init() {
	framework.Register(taxonomy.LightNVM, specs)
	framework.DeclareParams(taxonomy.LightNVM,
		framework.Param{Key: ParamPerfSamples, Kind: framework.KindCount, Default: "5", Meaning: "runs of each polled/interrupt × QD1/QD32 configuration"},
		framework.Param{Key: ParamPerfRounds, Kind: framework.KindCount, Default: "15", Meaning: "rounds of 128 one-page vector reads per perf run"})
}

// countParam reads a positive count parameter.
func countParam(b *framework.Backend, key string, def int) int {
	GinkgoHelper()
	v := def
	if b.Env != nil {
		if s, ok := b.Env.Params[key]; ok {
			n, err := strconv.Atoi(strings.TrimSpace(s))
			Expect(err == nil && n > 0).To(BeTrue(), "--param %s=%q: want a positive integer", key, s)
			v = n
		}
	}
	return v
}

const specTimeout = 60 * time.Second

func specs(b *framework.Backend) {
	Describe("admin", taxonomy.CPL3, func() {
		It("sets up queues, reads identify, geometry and the report-chunk log", func(ctx SpecContext) {
			adminSpec(ctx, b)
		}, SpecTimeout(specTimeout))
	})
	Describe("vector I/O", taxonomy.CPL3, func() {
		DescribeTable("data integrity by queue depth, polled, one queue per vCPU",
			func(ctx SpecContext, vcpus, qd int) { integritySpec(ctx, b, vcpus, qd, false) },
			entry("1 vCPU, QD1", 1, 1),
			entry("1 vCPU, QD32", 1, 32),
			entry("1 vCPU, QD128", 1, 128),
			entry("4 vCPUs, QD8", 4, 8),
			entry("4 vCPUs, QD128", 4, 128),
		)
		DescribeTable("data integrity by queue depth, completion by interrupt", needsIRQ,
			func(ctx SpecContext, vcpus, qd int) { integritySpec(ctx, b, vcpus, qd, true) },
			entry("1 vCPU, QD1", 1, 1),
			entry("2 vCPUs, QD32", 2, 32),
		)
		It("an OCSSD 1.2 device: physical page addresses, data integrity at QD32", func(ctx SpecContext) {
			integrityOn(ctx, newRig(b, rigConfig{vcpus: 1, dev: nvm.Config{Geometry: geometry12()}}), 1, 32, false)
		}, SpecTimeout(specTimeout))
		It("poll queues never interrupt over many I/Os; interrupt queues do", needsIRQ, taxonomy.Needs(hv.CapMultiVCPU), func(ctx SpecContext) {
			noInterruptSpec(ctx, b)
		}, SpecTimeout(specTimeout))
	})
	Describe("lifecycle", taxonomy.CPL3, func() {
		It("a controller reset mid-run completes or drops every command exactly once", func(ctx SpecContext) {
			resetSpec(ctx, b)
		}, SpecTimeout(specTimeout))
		It("a vCPU that leaves with I/O in flight still gets every completion", func(ctx SpecContext) {
			inFlightSpec(ctx, b)
		}, SpecTimeout(specTimeout))
		It("chunk state and data persist into a new VM", func(ctx SpecContext) {
			persistSpec(ctx, b)
		}, SpecTimeout(specTimeout))
	})
	Describe("sysfs", func() {
		It("writes each shipped geometry's tree in the kernel's names and formats", func() {
			sysfsSpec()
		})
	})
	Describe("perf", taxonomy.Perf, taxonomy.CPL3, func() {
		It("polled vs interrupt completions at QD1 and QD32", func(ctx SpecContext) {
			perfSpec(ctx, b)
		}, SpecTimeout(3*specTimeout))
	})
}

// entry is one (vCPUs, queue depth) case with the spec timeout.
func entry(text string, vcpus, qd int) TableEntry {
	if vcpus > 1 {
		return Entry(text, vcpus, qd, SpecTimeout(specTimeout), taxonomy.Needs(hv.CapMultiVCPU))
	}
	return Entry(text, vcpus, qd, SpecTimeout(specTimeout))
}

// needsIRQ labels the specs that complete by MSI.
var needsIRQ = Label(append(taxonomy.Needs(hv.CapIRQChip), taxonomy.Needs(hv.CapMSI)...)...)

func adminSpec(ctx context.Context, b *framework.Backend) {
	r := newRig(b, rigConfig{vcpus: 1})
	g := r.geo
	idCtrl, geoBuf := r.alloc(4096), r.geoBuf
	r.admin.add(r, nvm.Command{Opcode: nvm.AdminIdentify, PRP1: idCtrl, CDW10: nvm.CNSController})
	readLog := r.reportChunks()
	q := r.ioQueue(0, 1, 16, false)
	w := r.vectorWork(q, nvm.IOVectorWrite, 5, 2)
	r.chain(0, w, 1, 0)

	By("the guest enables the controller and runs the admin commands")
	r.run(ctx, nil)
	r.expectAllOnce(r.admin, "admin")
	r.expectAllOnce(w, "writes")

	By("identify: the CNEX vendor id; geometry: the device's own")
	Expect(binary.LittleEndian.Uint16(r.bytes(idCtrl, 2))).To(Equal(uint16(nvm.PCIVendorCNEX)))
	got, err := nvm.ParseIdentity(r.bytes(geoBuf, nvm.IdentifySize))
	Expect(err).NotTo(HaveOccurred())
	Expect(got.SysfsAttributes()).To(Equal(g.SysfsAttributes()), "geometry the guest read vs configured")

	By("report chunk: every chunk FREE with wp 0 and cnlb = clba before the writes")
	for i, c := range readLog() {
		Expect(c.State).To(Equal(nvm.ChunkFree), "chunk %d", i)
		Expect(c.WP).To(BeZero(), "chunk %d", i)
		Expect(c.CNLB).To(Equal(uint64(g.CLBA)), "chunk %d", i)
	}
	c, err := r.dev.Chunk(5)
	Expect(err).NotTo(HaveOccurred())
	Expect(c.State).To(Equal(nvm.ChunkOpen))
	Expect(c.WP).To(Equal(uint64(2 * lbasPerCmd)))
}

// reportChunks adds a Get Log Page of the whole report-chunk log to the
// admin work; the returned function decodes what the guest received.
func (r *rig) reportChunks() func() []nvm.Chunk {
	n := r.geo.TotalChunks()
	logLen := n * nvm.ChunkDescriptorSize
	buf := r.alloc(uint64(logLen))
	numd := uint32(logLen/4 - 1)
	r.admin.add(r, nvm.Command{Opcode: nvm.AdminGetLogPage, NSID: 1, PRP1: buf, PRP2: prpList(r, buf, logLen),
		CDW10: nvm.LogReportChunk | numd<<16, CDW11: numd >> 16})
	return func() []nvm.Chunk {
		GinkgoHelper()
		raw := r.bytes(buf, logLen)
		out := make([]nvm.Chunk, n)
		for i := range out {
			c, err := nvm.ParseDescriptor(raw[i*nvm.ChunkDescriptorSize:])
			Expect(err).NotTo(HaveOccurred())
			out[i] = c
		}
		return out
	}
}

// persistSpec: a guest writes through a device with a backing file; a
// second VM on the same file sees the chunk states and write pointers in
// the report-chunk log and reads the data back.
func persistSpec(ctx context.Context, b *framework.Backend) {
	backing := filepath.Join(GinkgoT().TempDir(), "ocssd.state")
	cfg := rigConfig{vcpus: 1, dev: nvm.Config{Geometry: suiteGeometry(), Backing: backing}}
	perChunk := suiteGeometry().CLBA / lbasPerCmd

	By("the first VM fills chunk 3 and writes two units into chunk 4")
	r1 := newRig(b, cfg)
	q1 := r1.ioQueue(0, 1, 64, false)
	fill := r1.vectorWork(q1, nvm.IOVectorWrite, 3, perChunk+2)
	r1.chain(0, fill, 8, 0)
	r1.run(ctx, nil)
	r1.expectAllOnce(fill, "first VM writes")
	Expect(r1.g.Close()).To(Succeed())

	By("a second VM on the same backing file")
	r2 := newRig(b, cfg)
	readLog := r2.reportChunks()
	q2 := r2.ioQueue(0, 1, 64, false)
	back := r2.vectorWork(q2, nvm.IOVectorRead, 3, perChunk)
	r2.chain(0, back, 8, 0)
	r2.run(ctx, nil)
	r2.expectAllOnce(back, "second VM reads")
	r2.expectData(back, "second VM")
	log := readLog()
	Expect(log[3].State).To(Equal(nvm.ChunkClosed), "chunk 3 in the new VM's report-chunk log")
	Expect(log[3].WP).To(Equal(uint64(suiteGeometry().CLBA)))
	Expect(log[4].State).To(Equal(nvm.ChunkOpen), "chunk 4")
	Expect(log[4].WP).To(Equal(uint64(2 * lbasPerCmd)))
}

// prpList builds the PRP2 of a page-aligned buffer of n bytes.
func prpList(r *rig, buf uint64, n int) uint64 {
	pages := (n + 4095) / 4096
	switch {
	case pages <= 1:
		return 0
	case pages == 2:
		return buf + 4096
	}
	list := r.alloc(uint64(pages-1) * 8)
	for i := 1; i < pages; i++ {
		r.put64(list+uint64(i-1)*8, buf+uint64(i)*4096)
	}
	return list
}

// ioCommands is how many vector commands each vCPU writes, then reads.
const ioCommands = 128

func integritySpec(ctx context.Context, b *framework.Backend, vcpus, qd int, irq bool) {
	integrityOn(ctx, newRig(b, rigConfig{vcpus: vcpus, irq: irq}), vcpus, qd, irq)
}

// geometry12 is the suite geometry's shape in OCSSD 1.2 terms: 2
// channels × 4 LUNs × 16 blocks of 8 pages of one 4 KiB plane page, so a
// block is 64 512-byte sectors and ws_min one page (8 sectors).
func geometry12() nvm.Geometry {
	return nvm.Geometry{Version: nvm.V12, Channels: 2, LUNs: 4, Planes: 1, Blocks: 16, Pages: 8, PageSize: 4096,
		SectorSize: 512, OOBSize: 16, ReadTyp: 50000, ReadMax: 100000, ProgTyp: 200000, ProgMax: 400000,
		EraseTyp: 500000, EraseMax: 1000000}
}

func integrityOn(ctx context.Context, r *rig, vcpus, qd int, irq bool) {
	chunksPer := ioCommands * lbasPerCmd / r.geo.CLBA
	writes, reads := make([]*work, vcpus), make([]*work, vcpus)
	for v := 0; v < vcpus; v++ {
		q := r.ioQueue(v, v+1, 256, irq)
		writes[v] = r.vectorWork(q, nvm.IOVectorWrite, v*chunksPer, ioCommands)
		reads[v] = r.vectorWork(q, nvm.IOVectorRead, v*chunksPer, ioCommands)
		r.chain(v, writes[v], qd, 0)
		r.chain(v, reads[v], qd, 0)
	}
	By(fmt.Sprintf("%d vCPUs write then read %d vector commands each at QD%d", vcpus, ioCommands, qd))
	r.run(ctx, nil)
	st := r.dev.Stats()
	for v := 0; v < vcpus; v++ {
		r.expectAllOnce(writes[v], fmt.Sprintf("vCPU %d writes", v))
		r.expectAllOnce(reads[v], fmt.Sprintf("vCPU %d reads", v))
		r.expectData(reads[v], fmt.Sprintf("vCPU %d", v))
		if irq {
			Expect(st.Interrupts[v+1]).NotTo(BeZero(), "interrupt queue %d never interrupted", v+1)
			n, err := r.g.InterruptCount(v, irqVector)
			Expect(err).NotTo(HaveOccurred())
			Expect(n).NotTo(BeZero(), "vCPU %d took no interrupt", v)
		} else {
			Expect(st.Interrupts[v+1]).To(BeZero(), "poll queue %d interrupted", v+1)
		}
		for ci := v * chunksPer; ci < (v+1)*chunksPer; ci++ {
			c, err := r.dev.Chunk(ci)
			Expect(err).NotTo(HaveOccurred())
			Expect(c.State).To(Equal(nvm.ChunkClosed), "chunk %d after being filled", ci)
		}
	}
	Expect(st.InterruptErrors).To(BeZero(), st.LastError)
	AddReportEntry("device counters", fmt.Sprintf("submitted %d completed %d interrupts %v", st.Submitted, st.Completed, st.Interrupts[:vcpus+1]))
}

// noInterruptSpec: many I/Os on a poll queue next to an interrupt queue.
func noInterruptSpec(ctx context.Context, b *framework.Backend) {
	r := newRig(b, rigConfig{vcpus: 2, irq: true})
	const rounds = 16
	poll := r.ioQueue(0, 1, 256, false)
	irqQ := r.ioQueue(1, 2, 64, true)
	for i := 0; i < rounds; i++ {
		// Reads of FREE chunks: the device answers zeroes; only the
		// completion path is under test.
		r.chain(0, r.vectorWork(poll, nvm.IOVectorRead, 0, 128), 32, 0)
	}
	r.chain(1, r.vectorWork(irqQ, nvm.IOVectorRead, 0, 32), 4, 0)
	r.run(ctx, nil)
	st := r.dev.Stats()
	Expect(st.Interrupts[1]).To(BeZero(), "poll queue: interrupts over %d I/Os", rounds*128)
	n0, err := r.g.InterruptCount(0, irqVector)
	Expect(err).NotTo(HaveOccurred())
	Expect(n0).To(BeZero(), "the polling vCPU took interrupts")
	Expect(st.Interrupts[2]).NotTo(BeZero(), "the interrupt queue never interrupted")
	AddReportEntry("poll-queue I/Os", rounds*128)
}

// timedReads is a one-vCPU rig whose device honours read latencies in
// [typ, max] ns, with n reads prepared on poll queue 1.
func timedReads(b *framework.Backend, typ, max uint32, n int) (*rig, nvm.Geometry, *queue, *work) {
	GinkgoHelper()
	g := suiteGeometry()
	g.ReadTyp, g.ReadMax = typ, max
	r := newRig(b, rigConfig{vcpus: 1, dev: nvm.Config{Geometry: g, Timing: true, Seed: GinkgoRandomSeed()}})
	q := r.ioQueue(0, 1, 128, false)
	return r, g, q, r.vectorWork(q, nvm.IOVectorRead, 0, n)
}

// resetSpec: with media latencies on, vCPU 0 reaps part of its commands,
// disables the controller, and the host checks at that SYNC that nothing
// is posted afterwards and every command was completed or dropped once.
func resetSpec(ctx context.Context, b *framework.Backend) {
	const n = 100
	r, g, q, w := timedReads(b, 200_000, 5_000_000, n)
	r.chain(0, w, n, 10) // all in flight, return after 10 completions
	r.chainReset(0, q)
	var snapshot []byte
	r.run(ctx, func(u *guest.Ucall) error {
		if u.Stage() != stageReset {
			return nil
		}
		snapshot = append([]byte(nil), r.bytes(q.cq, 128*nvm.CQEntrySize)...)
		time.Sleep(time.Duration(g.ReadMax) + 20*time.Millisecond)
		if after := r.bytes(q.cq, 128*nvm.CQEntrySize); string(after) != string(snapshot) {
			return fmt.Errorf("a completion was posted after the controller reset")
		}
		return nil
	})
	Expect(snapshot).NotTo(BeNil(), "the guest never reset the controller")
	st := r.dev.Stats()
	Expect(st.Completed+st.Aborted).To(Equal(st.Submitted), "completed %d + dropped %d vs fetched %d", st.Completed, st.Aborted, st.Submitted)
	// Every CQE in the queue names a distinct command; the guest reaped
	// at least the 10 it waited for, never one twice.
	posted := map[uint16]int{}
	for i := 0; i < 128; i++ {
		c := nvm.DecodeCompletion(snapshot[i*nvm.CQEntrySize:])
		if !c.Phase {
			break
		}
		posted[c.CID]++
		Expect(posted[c.CID]).To(Equal(1), "cid %d posted twice", c.CID)
		Expect(c.Status).To(Equal(nvm.StatusSuccess))
	}
	seen := 0
	for cid, k := range r.bytes(w.seen, n) {
		Expect(k).To(BeNumerically("<=", 1), "cid %d reaped %d times", cid, k)
		if k == 1 {
			Expect(posted).To(HaveKey(uint16(cid)), "reaped cid %d is not in the queue", cid)
			seen++
		}
	}
	Expect(seen).To(BeNumerically(">=", 10))
	ioCompleted := int(st.Completed) - r.admin.n
	Expect(len(posted)).To(Equal(ioCompleted), "I/O completions in the queue vs the device's count")
	AddReportEntry("reset mid-run", fmt.Sprintf("%d of %d completed before the reset, %d dropped", len(posted), n, st.Aborted))
}

// inFlightSpec: the vCPU submits and leaves; the completions still come.
func inFlightSpec(ctx context.Context, b *framework.Backend) {
	const n = 64
	r, _, q, w := timedReads(b, 500_000, 2_000_000, n)
	r.chain(0, w, n, stopSubmitOnly)
	r.run(ctx, nil)
	Expect(r.get64(w.cb+cbDone)).To(BeZero(), "the guest reaped nothing")
	Eventually(func() uint64 {
		st := r.dev.Stats()
		return st.Completed
	}).WithContext(ctx).WithTimeout(10*time.Second).Should(Equal(uint64(n+r.admin.n)), "completions of the commands left in flight")
	cids := map[uint16]bool{}
	for i := 0; i < n; i++ {
		c := nvm.DecodeCompletion(r.bytes(q.cq+uint64(i)*nvm.CQEntrySize, nvm.CQEntrySize))
		Expect(c.Phase).To(BeTrue(), "entry %d not posted", i)
		Expect(cids).NotTo(HaveKey(c.CID))
		cids[c.CID] = true
	}
	st := r.dev.Stats()
	Expect(st.Submitted).To(Equal(st.Completed), "nothing dropped, nothing leaked")
}

func sysfsSpec() {
	files, err := fs.Glob(fixtures.LightNVM, "lightnvm/*.json")
	Expect(err).NotTo(HaveOccurred())
	Expect(files).NotTo(BeEmpty())
	for _, f := range files {
		raw, err := fs.ReadFile(fixtures.LightNVM, f)
		Expect(err).NotTo(HaveOccurred())
		g, err := nvm.ParseGeometry(raw)
		Expect(err).NotTo(HaveOccurred(), f)
		dir := GinkgoT().TempDir()
		grp, err := nvm.WriteSysfs(dir, g)
		Expect(err).NotTo(HaveOccurred(), f)
		back, err := nvm.ReadSysfs(dir)
		Expect(err).NotTo(HaveOccurred(), f)
		Expect(back.SysfsAttributes()).To(Equal(g.SysfsAttributes()), f)
		// The identity the device answers describes the same device.
		id, err := nvm.ParseIdentity(g.Identity())
		Expect(err).NotTo(HaveOccurred(), f)
		Expect(id.SysfsAttributes()).To(Equal(g.SysfsAttributes()), f)
		AddReportEntry(path.Base(f), fmt.Sprintf("%s: OCSSD %s, %d attributes", grp, g.Version, len(g.SysfsAttributes())))
	}
}

// perfSpec measures completions per second and time per I/O, polled and
// interrupt-driven, at QD1 and QD32; the ratio is reported, not judged.
// Configurations take turns sample by sample, so a change in the host's
// load spreads over all of them instead of biasing one.
func perfSpec(ctx context.Context, b *framework.Backend) {
	exp := gmeasure.NewExperiment("lightnvm completions")
	samples, rounds := countParam(b, ParamPerfSamples, 5), countParam(b, ParamPerfRounds, 15)
	modes := []bool{false}
	if b.Caps.Has(hv.CapIRQChip) && b.Caps.Has(hv.CapMSI) {
		modes = append(modes, true)
	} else {
		AddReportEntry("interrupt mode", "skipped: the backend has no irqchip/MSI")
	}
	rates := map[string][]float64{}
	for s := 0; s < samples; s++ {
		for _, qd := range []int{1, 32} {
			for _, irq := range modes {
				name := fmt.Sprintf("QD%d %s", qd, map[bool]string{false: "polled", true: "interrupt"}[irq])
				ios, d, exits := perfSample(ctx, b, qd, irq, rounds)
				rates[name] = append(rates[name], float64(ios)/d.Seconds())
				exp.RecordValue(name+" completions/s", float64(ios)/d.Seconds(), gmeasure.Units("IO/s"), gmeasure.Precision(0))
				exp.RecordValue(name+" time per I/O", float64(d.Nanoseconds())/1e3/float64(ios), gmeasure.Units("µs"), gmeasure.Precision(2))
				if exits > 0 {
					exp.RecordValue(name+" 'exits' stat per I/O", float64(exits)/float64(ios), gmeasure.Units("exits"), gmeasure.Precision(2))
				}
			}
		}
	}
	for _, qd := range []int{1, 32} {
		p, i := median(rates[fmt.Sprintf("QD%d polled", qd)]), median(rates[fmt.Sprintf("QD%d interrupt", qd)])
		if p > 0 && i > 0 {
			exp.RecordValue(fmt.Sprintf("QD%d polled/interrupt rate ratio (medians)", qd), p/i, gmeasure.Precision(2))
		}
	}
	AddReportEntry(exp.Name, exp)
}

// perfSample runs one guest that reads rounds × 128 single-page vector
// commands at depth qd and returns the I/Os, the time from the end of the
// admin work to the end of the run, and vCPU 0's exits meanwhile.
func perfSample(ctx context.Context, b *framework.Backend, qd int, irq bool, rounds int) (int, time.Duration, uint64) {
	GinkgoHelper()
	r := newRig(b, rigConfig{vcpus: 1, irq: irq})
	q := r.ioQueue(0, 1, 256, irq)
	for i := 0; i < rounds; i++ {
		r.chain(0, r.vectorWork(q, nvm.IOVectorRead, 0, 128), qd, 0)
	}
	var start time.Time
	var exits0 uint64
	r.run(ctx, func(u *guest.Ucall) error {
		if u.Stage() == stageAdmin {
			start = time.Now()
			exits0 = vcpuExits(r.g)
		}
		return nil
	})
	d := time.Since(start)
	return rounds * 128, d, vcpuExits(r.g) - exits0
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// vcpuExits is vCPU 0's exit count where the backend keeps one.
func vcpuExits(g *guest.Guest) uint64 {
	st, err := g.VCPUs[0].Stats()
	if err != nil {
		return 0
	}
	n, _ := st.Get("exits")
	return n
}
