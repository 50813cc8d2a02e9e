package vgpu

import (
	"context"
	"encoding/binary"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Guest-physical layout of the test rig: slot 0 is RAM at [0, ramSize)
// and logs dirty pages, slot 1 a read-only page at roPage, and nothing
// backs holePage.
const (
	ramSize  = 1 << 20
	roPage   = ramSize
	holePage = ramSize + 2*hv.PageSize
	sharedPA = 0x10000 // the guest driver's shared page
	ctxPA    = 0x20000 // command streams, one page per context
	seqPA    = 0x30000 // breadcrumbs the command streams store
)

// span is one guest-memory access the device made.
type span struct {
	gpa, n uint64
	write  bool
}

// recorder is a GuestMemory that remembers every access the device makes
// through it, so tests can say what the device touched.
type recorder struct {
	hv.GuestMemory
	mu    sync.Mutex
	spans []span
}

func (r *recorder) add(gpa, n uint64, write bool) {
	r.mu.Lock()
	r.spans = append(r.spans, span{gpa, n, write})
	r.mu.Unlock()
}

func (r *recorder) take() []span {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.spans
	r.spans = nil
	return s
}

func (r *recorder) ReadGPA(gpa uint64, b []byte) error {
	r.add(gpa, uint64(len(b)), false)
	return r.GuestMemory.ReadGPA(gpa, b)
}

func (r *recorder) WriteGPA(gpa uint64, b []byte) error {
	r.add(gpa, uint64(len(b)), true)
	return r.GuestMemory.WriteGPA(gpa, b)
}

func (r *recorder) Load32(gpa uint64) (uint32, error) {
	r.add(gpa, 4, false)
	return r.GuestMemory.Load32(gpa)
}

func (r *recorder) Store32(gpa uint64, v uint32) error {
	r.add(gpa, 4, true)
	return r.GuestMemory.Store32(gpa, v)
}

// irqSink records the interrupts the device raises.
type irqSink struct {
	mu   sync.Mutex
	got  []uint8
	fail bool
}

func (s *irqSink) Interrupt(vcpu int, vector uint8) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return hv.ErrUnsupported
	}
	s.got = append(s.got, vector)
	return nil
}

func (s *irqSink) SignalMSI(uint64, uint32) error { return hv.ErrUnsupported }
func (s *irqSink) SetIRQLine(uint32, bool) error  { return hv.ErrUnsupported }

func (s *irqSink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got)
}

// rig is a device over real hv.Memory slots with recording memory and a
// recording interrupt sink.
type rig struct {
	t     testing.TB
	d     *Device
	ga    *hv.GuestAccess
	mem   *hv.Memory
	rec   *recorder
	irq   *irqSink
	dirty map[uint64]bool // pages of slot 0 written through GuestAccess
	dmu   sync.Mutex
}

const testVector = 0x40

func newRig(t testing.TB) *rig {
	t.Helper()
	mem, err := hv.NewMemory(ramSize+hv.PageSize, hv.Anonymous)
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, mem: mem, irq: &irqSink{}, dirty: map[uint64]bool{}}
	slots := []hv.Memslot{
		{Slot: 0, GPA: 0, Size: ramSize, Memory: mem, Flags: hv.MemLogDirty},
		{Slot: 1, GPA: roPage, Size: hv.PageSize, Memory: mem, Offset: ramSize, Flags: hv.MemReadOnly},
	}
	r.ga = &hv.GuestAccess{
		Slots: func() []hv.Memslot { return slots },
		Written: func(m hv.Memslot, first, last uint64) {
			r.dmu.Lock()
			for p := first; p <= last; p++ {
				r.dirty[m.GPA/hv.PageSize+p] = true
			}
			r.dmu.Unlock()
		},
	}
	r.rec = &recorder{GuestMemory: r.ga}
	d, err := New(Config{Memory: r.rec, IRQ: r.irq, Vector: testVector})
	if err != nil {
		t.Fatal(err)
	}
	d.engineMem = r.ga // the engines' accesses are not the transport's
	r.d = d
	t.Cleanup(func() {
		d.Close()
		mem.Close()
	})
	return r
}

// access performs one guest MMIO access of len(b) bytes at BAR0 offset off.
func (r *rig) access(off uint64, b []byte, write bool) {
	r.t.Helper()
	if err := r.d.Access(&hv.Access{Offset: off, Data: b, Write: write}); err != nil {
		r.t.Fatalf("access %#x: %v", off, err)
	}
}

func (r *rig) r32(off uint64) uint32 {
	var b [4]byte
	r.access(off, b[:], false)
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) r64(off uint64) uint64 {
	var b [8]byte
	r.access(off, b[:], false)
	return binary.LittleEndian.Uint64(b[:])
}

func (r *rig) w32(off uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	r.access(off, b[:], true)
}

func (r *rig) w64(off uint64, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	r.access(off, b[:], true)
}

func (r *rig) load32(gpa uint64) uint32 {
	r.t.Helper()
	v, err := r.ga.Load32(gpa)
	if err != nil {
		r.t.Fatal(err)
	}
	return v
}

func (r *rig) store32(gpa uint64, v uint32) {
	r.t.Helper()
	if err := r.ga.Store32(gpa, v); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) byteAt(gpa uint64) byte {
	r.t.Helper()
	var b [1]byte
	if err := r.ga.ReadGPA(gpa, b[:]); err != nil {
		r.t.Fatal(err)
	}
	return b[0]
}

func (r *rig) drain() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.d.Drain(ctx); err != nil {
		r.t.Fatal(err)
	}
}

// Guest driver side, as the PV series' guest does it, in Go.

// errNoSpace is the guest's -ENOSPC: the message does not fit.
var errNoSpace = errors.New("ctb: no space")

// setup negotiates guestCaps, registers the shared page at sp, initialises
// the CTB descriptor at ring position start and registers the
// submission area at sp+PVSubOff.
func (r *rig) setup(sp uint64, guestCaps uint32, start uint32) {
	r.t.Helper()
	if r.r32(PVInfoBase+OffVGTCaps)&VGTCapsPV == 0 {
		r.t.Fatal("VGT_CAPS_PV not offered")
	}
	r.w32(PVInfoBase+OffPVCaps, guestCaps&r.r32(PVInfoBase+OffPVCaps))
	r.w64(PVInfoBase+OffSharedPage, sp)
	if got := r.r64(PVInfoBase + OffSharedPage); got != sp {
		r.t.Fatalf("shared_page_gpa read back %#x, want %#x", got, sp)
	}
	r.w32(PVInfoBase+OffG2VNotify, G2VSharedPageRegister)
	r.initCTB(sp, PVCmdOff, CTBSize, start)
	if st := r.send(sp, PVCmdRegisterCapGPA, PVSubmission, uint32(sp+PVSubOff), uint32((sp+PVSubOff)>>32)); st != StatusOK {
		r.t.Fatalf("REGISTER_CAP_GPA status %#x", st)
	}
}

func (r *rig) initCTB(sp uint64, addr, size, start uint32) {
	r.t.Helper()
	for i, v := range []uint32{addr, size, start, start, 0, 0} {
		r.store32(sp+PVDescOff+uint64(4*i), v)
	}
}

// write puts a message in the ring the guest's way and returns its fence;
// it refuses with errNoSpace when used+len+1 >= size in dwords.
func (r *rig) write(sp uint64, fence uint32, action uint32, data ...uint32) error {
	desc := sp + PVDescOff
	addr := r.load32(desc + CTBDescAddr)
	size := r.load32(desc + CTBDescSizeOf)
	head := r.load32(desc + CTBDescHead)
	tail := r.load32(desc + CTBDescTail)
	n := uint32(len(data)) + 1 // action[0] rides in the header
	used := (tail + size - head) % size / 4
	if used+n+1 >= size/4 {
		return errNoSpace
	}
	msg := append([]uint32{action<<CTBActionShift | CTBWriteFenceToDesc | n, fence}, data...)
	for _, v := range msg {
		r.store32(sp+uint64(addr+tail), v)
		tail = (tail + 4) % size
	}
	r.store32(desc+CTBDescTail, tail)
	return nil
}

// send writes one message, triggers the host and returns the status after
// checking that the fence came back.
func (r *rig) send(sp uint64, action uint32, data ...uint32) uint32 {
	r.t.Helper()
	fence := r.load32(sp+PVDescOff+CTBDescFence) + 1
	if err := r.write(sp, fence, action, data...); err != nil {
		r.t.Fatal(err)
	}
	r.w32(PVInfoBase+OffG2VNotify, G2VPVSendTrigger)
	if got := r.load32(sp + PVDescOff + CTBDescFence); got != fence {
		r.t.Fatalf("fence %d, want %d", got, fence)
	}
	return r.load32(sp + PVDescOff + CTBDescStatus)
}

// context writes a command stream that stores seq at seqAt, raises a user
// interrupt when irq is set and ends; it returns its address.
func (r *rig) context(n int, seqAt uint64, seq uint32, irq bool) uint64 {
	r.t.Helper()
	at := uint64(ctxPA + n*hv.PageSize)
	cmds := []uint32{MINoop, MIStoreDwordImm, uint32(seqAt), uint32(seqAt >> 32), seq}
	if irq {
		cmds = append(cmds, MIUserInterrupt)
	}
	cmds = append(cmds, MIBatchBufferEnd)
	for i, v := range cmds {
		r.store32(at+uint64(4*i), v)
	}
	return at
}

// desc is a valid PPGTT descriptor for the context at ctx with context id.
func desc(ctx uint64, id uint32) uint64 {
	return uint64(id)<<32 | ctx&DescLRCAMask | DescPrivilege | DescValid
}

// fillSub writes engine e's submission area with submitted = 1.
func (r *rig) fillSub(sp uint64, e int, descs, ctx [Ports]uint64) uint64 {
	r.t.Helper()
	var raw [SubSize]byte
	raw[SubSubmitted] = 1
	for i := range descs {
		binary.LittleEndian.PutUint64(raw[SubDescs+8*i:], descs[i])
		binary.LittleEndian.PutUint64(raw[SubCtxGPA+8*i:], ctx[i])
	}
	area := sp + PVSubOff + uint64(e)*SubSize
	if err := r.ga.WriteGPA(area, raw[:]); err != nil {
		r.t.Fatal(err)
	}
	return area
}

// elsp submits the pair the legacy way: port 1 upper, lower, port 0 upper, lower.
func (r *rig) elsp(e int, d0, d1 uint64) {
	reg := uint64(Engines[e].Base + RegELSP)
	for _, v := range []uint32{uint32(d1 >> 32), uint32(d1), uint32(d0 >> 32), uint32(d0)} {
		r.w32(reg, v)
	}
}
