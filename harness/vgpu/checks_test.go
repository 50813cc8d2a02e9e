package vgpu

import (
	"encoding/binary"
	"fmt"
	"math/rand"
	"testing"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// The ten CI checks of devices.md part (a), at the model level.

// Check 1: PVINFO identity; identity fields ignore writes of every size.
func TestCheck1PVInfoIdentity(t *testing.T) {
	r := newRig(t)
	if PVInfoSize != 4096 {
		t.Fatalf("sizeof(vgt_if) = %d", PVInfoSize)
	}
	identity := func() [4]uint64 {
		return [4]uint64{r.r64(PVInfoBase + OffMagic), uint64(r.r32(PVInfoBase + OffVersionMajor)),
			uint64(r.r32(PVInfoBase + OffVGTID)), uint64(r.r32(PVInfoBase + OffVGTCaps))}
	}
	before := identity()
	if before[0] != Magic {
		t.Fatalf("magic %#x", before[0])
	}
	if major := uint16(before[1]); major < 1 {
		t.Fatalf("version_major %d", major)
	}
	if before[3]&VGTCapsPV == 0 {
		t.Fatalf("vgt_caps %#x lacks VGT_CAPS_PV", before[3])
	}
	writes := []struct {
		off  uint64
		size int
	}{
		{OffMagic, 8}, {OffMagic, 4}, {OffMagic + 4, 4}, {OffMagic + 3, 1}, {OffMagic + 6, 2},
		{OffVersionMajor, 2}, {OffVersionMinor, 2}, {OffVersionMajor, 4}, {OffVersionMajor, 8},
		{OffVGTID, 4}, {OffVGTCaps, 4}, {OffVGTCaps, 1},
	}
	for _, w := range writes {
		b := make([]byte, w.size)
		for i := range b {
			b[i] = 0xa5
		}
		r.access(PVInfoBase+w.off, b, true)
		if got := identity(); got != before {
			t.Errorf("%d-byte write at +%#x changed identity: %x, want %x", w.size, w.off, got, before)
		}
	}
}

// Check 2: offsets, the split read of the unaligned shared_page_gpa, and
// the writeq/readq round trip the guest depends on.
func TestCheck2Offsets(t *testing.T) {
	golden := []struct {
		name      string
		got, want int
	}{
		{"magic", OffMagic, 0x000}, {"version_major", OffVersionMajor, 0x008},
		{"version_minor", OffVersionMinor, 0x00a}, {"vgt_caps", OffVGTCaps, 0x010},
		{"display_ready", OffDisplayReady, 0x804}, {"g2v_notify", OffG2VNotify, 0x818},
		{"pv_caps", OffPVCaps, 0x860}, {"shared_page_gpa", OffSharedPage, 0x864},
		{"PVINFO page", PVInfoBase, 0x78000}, {"PV_DESC_OFF", PVDescOff, 16},
		{"PV_SUB_OFF", PVSubOff, 1024}, {"PV_CMD_OFF", PVCmdOff, 2048},
		{"submitted", SubSubmitted, 0}, {"ctx_gpa", SubCtxGPA, 17}, {"sizeof(pv_submission)", SubSize, 33},
	}
	for _, g := range golden {
		if g.got != g.want {
			t.Errorf("%s at %#x, want %#x", g.name, g.got, g.want)
		}
	}
	r := newRig(t)
	for _, v := range []uint64{0, sharedPA, 0x1122334455667000, ^uint64(0)} {
		r.w64(PVInfoBase+OffSharedPage, v)
		if got := r.r64(PVInfoBase + OffSharedPage); got != v {
			t.Errorf("readq after writeq %#x: %#x", v, got)
		}
		split := uint64(r.r32(PVInfoBase+OffSharedPage)) | uint64(r.r32(PVInfoBase+OffSharedPage+4))<<32
		if split != v {
			t.Errorf("split read after writeq %#x: %#x", v, split)
		}
	}
	// Two dword writes, as a guest without writeq does it.
	r.w32(PVInfoBase+OffSharedPage, 0xdeadb000)
	r.w32(PVInfoBase+OffSharedPage+4, 0x7)
	if got := r.r64(PVInfoBase + OffSharedPage); got != 0x7deadb000 {
		t.Errorf("split write: %#x", got)
	}
	r.w32(PVInfoBase+OffG2VNotify, G2VPPGTTL4Create)
	if got := r.r32(PVInfoBase + OffG2VNotify); got != G2VPPGTTL4Create {
		t.Errorf("g2v_notify reads %d", got)
	}
}

// Check 3: negotiation keeps the intersection; pv_caps 0 makes the
// submit value an ordinary ELSP dword.
func TestCheck3Negotiation(t *testing.T) {
	cases := []struct {
		guest, want uint32
	}{
		{PVSubmission, PVSubmission},
		{PVPPGTT | PVGGTT | PVSubmission, HostPVCaps},
		{PVSubmission | 1<<7, PVSubmission}, // the host cannot be talked into caps it lacks
		{0, 0},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("guest=%#x", c.guest), func(t *testing.T) {
			r := newRig(t)
			if got := r.r32(PVInfoBase + OffPVCaps); got != HostPVCaps {
				t.Fatalf("host pv_caps %#x, want %#x", got, HostPVCaps)
			}
			r.w32(PVInfoBase+OffPVCaps, c.guest&r.r32(PVInfoBase+OffPVCaps)|c.guest&1<<7)
			if got := r.r32(PVInfoBase + OffPVCaps); got != c.want {
				t.Fatalf("pv_caps %#x, want %#x", got, c.want)
			}
			before := r.d.Stats()
			r.w32(uint64(Engines[0].Base+RegELSP), PVCmdSubmitWorkload)
			after := r.d.Stats()
			idx := r.d.engines[0].elspIdx
			if c.want&PVSubmission != 0 {
				// PV path: no area registered, so refused with its error,
				// and the ELSP index did not move.
				if idx != 0 || r.d.Error() != ErrSubmitNoArea || after.Rejected != before.Rejected+1 {
					t.Fatalf("PV submit: elsp index %d, error %d, stats %+v", idx, r.d.Error(), after)
				}
				return
			}
			if idx != 1 || r.d.Error() != ErrNone || after.Rejected != before.Rejected {
				t.Fatalf("ordinary ELSP dword: elsp index %d, error %d", idx, r.d.Error())
			}
			if r.d.engines[0].elsp[3] != PVCmdSubmitWorkload {
				t.Fatalf("ELSP dword stored as %#x", r.d.engines[0].elsp[3])
			}
		})
	}
}

// Check 4: registration of valid and invalid pages.
func TestCheck4SharedPageRegistration(t *testing.T) {
	cases := []struct {
		name  string
		gpa   uint64
		valid bool
	}{
		{"RAM", sharedPA, true},
		{"last RAM page", ramSize - hv.PageSize, true},
		{"unbacked", holePage, false},
		{"beyond every slot", 1 << 40, false},
		{"read-only slot", roPage, false},
		{"unaligned", sharedPA + 8, false},
		{"wrapping", ^uint64(0) &^ 0xfff, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.w64(PVInfoBase+OffSharedPage, c.gpa)
			r.rec.take()
			r.w32(PVInfoBase+OffG2VNotify, G2VSharedPageRegister)
			// Checked right after the MMIO write returned.
			spans := r.rec.take()
			caps := r.r32(PVInfoBase + OffPVCaps)
			if !c.valid {
				if caps != 0 || r.d.Error() != ErrSharedPageInvalid {
					t.Fatalf("pv_caps %#x error %d, want 0 and ErrSharedPageInvalid", caps, r.d.Error())
				}
				// Nothing was written: where the GPA is readable at all, its
				// version words are still zero.
				var ver [4]byte
				if err := r.ga.ReadGPA(c.gpa, ver[:]); err == nil && ver != [4]byte{} {
					t.Fatalf("invalid registration wrote %x (device accesses %v)", ver, spans)
				}
				if r.d.sharedEnabled {
					t.Fatal("shared page enabled")
				}
				return
			}
			if caps != HostPVCaps || r.d.Error() != ErrNone {
				t.Fatalf("pv_caps %#x error %d", caps, r.d.Error())
			}
			major := uint16(r.byteAt(c.gpa)) | uint16(r.byteAt(c.gpa+1))<<8
			minor := uint16(r.byteAt(c.gpa+2)) | uint16(r.byteAt(c.gpa+3))<<8
			if major != PVMajor || minor != PVMinor {
				t.Fatalf("version %d.%d, want %d.%d", major, minor, PVMajor, PVMinor)
			}
		})
	}
}

// Check 5: the ring math as a property over random lengths and wrap
// positions; the payload the host decodes is the one the guest wrote.
func TestCheck5CTBRingMath(t *testing.T) {
	seed := int64(1)
	for iter := 0; iter < 20; iter++ {
		seed++
		rng := rand.New(rand.NewSource(seed))
		start := uint32(rng.Intn(CTBSize/4)) * 4
		t.Run(fmt.Sprintf("seed=%d/start=%d", seed, start), func(t *testing.T) {
			r := newRig(t)
			r.setup(sharedPA, PVSubmission, start)
			var got []uint32
			r.d.trace = func(action uint32, data []uint32) {
				got = append(append(got[:0], action), data...)
			}
			desc := uint64(sharedPA + PVDescOff)
			for m := 0; m < 200; m++ {
				n := 1 + rng.Intn(31)
				data := make([]uint32, n-1)
				for i := range data {
					data[i] = rng.Uint32()
				}
				head := r.load32(desc + CTBDescHead)
				st := r.send(sharedPA, PVCmdDefault, data...)
				if st != StatusOK {
					t.Fatalf("message %d len %d: status %#x", m, n, st)
				}
				if want := (head + 4*uint32(n+1)) % CTBSize; r.load32(desc+CTBDescHead) != want {
					t.Fatalf("message %d len %d from head %d: head %d, want %d", m, n, head, r.load32(desc+CTBDescHead), want)
				}
				if fmt.Sprint(got) != fmt.Sprint(append([]uint32{PVCmdDefault}, data...)) {
					t.Fatalf("message %d across head %d: host decoded %v, want action 0 and %v", m, head, got, data)
				}
			}
			// The empty ring: -ENODATA, fence and head pinned.
			fence, head := r.load32(desc+CTBDescFence), r.load32(desc+CTBDescHead)
			r.w32(PVInfoBase+OffG2VNotify, G2VPVSendTrigger)
			if st := r.load32(desc + CTBDescStatus); st != StatusENODATA {
				t.Fatalf("empty ring status %#x, want %#x", st, uint32(StatusENODATA))
			}
			if r.load32(desc+CTBDescFence) != fence || r.load32(desc+CTBDescHead) != head {
				t.Fatal("empty ring moved the fence or head")
			}
		})
	}
}

// Check 5, full ring: the guest refuses when used+len+1 >= 512 dwords, so
// one slot stays free; the host consumes a ring filled to that limit.
func TestCheck5CTBFullRing(t *testing.T) {
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, CTBSize-8)
	desc := uint64(sharedPA + PVDescOff)
	fence := r.load32(desc + CTBDescFence)
	filled := uint32(0)
	for {
		fence++
		if err := r.write(sharedPA, fence, PVCmdDefault, make([]uint32, 30)...); err != nil {
			break
		}
		filled += 32
	}
	// 15 messages of 32 dwords fill 480; the next (32) would make 512.
	if filled != 480 {
		t.Fatalf("filled %d dwords before -ENOSPC", filled)
	}
	for n := 29; n >= 0; n-- {
		if r.write(sharedPA, fence, PVCmdDefault, make([]uint32, n)...) == nil {
			filled += uint32(n + 2)
			fence++
		}
	}
	if filled != 511 {
		t.Fatalf("ring holds %d dwords, want 511 (one slot free)", filled)
	}
	r.w32(PVInfoBase+OffG2VNotify, G2VPVSendTrigger)
	if st, h, tl := r.load32(desc+CTBDescStatus), r.load32(desc+CTBDescHead), r.load32(desc+CTBDescTail); st != 0 || h != tl {
		t.Fatalf("after consuming a full ring: status %#x head %d tail %d", st, h, tl)
	}
	if r.load32(desc+CTBDescFence) != fence-1 {
		t.Fatalf("fence %d, want the last message's %d", r.load32(desc+CTBDescFence), fence-1)
	}
}

// Check 6 (and the model's other refusals): malformed descriptors and
// messages get -EINVAL and the error register, the device reads nothing
// outside the shared page, and head/fence stay put.
func TestCheck6MalformedCTB(t *testing.T) {
	type fields struct{ addr, size, head, tail uint32 }
	ok := fields{PVCmdOff, CTBSize, 0, 0}
	cases := []struct {
		name string
		f    fields
		msg  []uint32 // ring contents at head, when the descriptor is fine
		err  uint32
	}{
		{"head misaligned", fields{PVCmdOff, CTBSize, 2, 8}, nil, ErrCTBDescriptor},
		{"tail misaligned", fields{PVCmdOff, CTBSize, 0, 7}, nil, ErrCTBDescriptor},
		{"size misaligned", fields{PVCmdOff, CTBSize - 2, 0, 8}, nil, ErrCTBDescriptor},
		{"addr misaligned", fields{PVCmdOff + 1, 1024, 0, 8}, nil, ErrCTBDescriptor},
		{"head = size", fields{PVCmdOff, CTBSize, CTBSize, 8}, nil, ErrCTBDescriptor},
		{"tail = size", fields{PVCmdOff, CTBSize, 0, CTBSize}, nil, ErrCTBDescriptor},
		{"tail huge", fields{PVCmdOff, CTBSize, 0, 0xfffffffc}, nil, ErrCTBDescriptor},
		{"size 0", fields{PVCmdOff, 0, 0, 0}, nil, ErrCTBDescriptor},
		{"ring past the page", fields{PVCmdOff, CTBSize + 4, 0, 8}, nil, ErrCTBDescriptor},
		{"addr past the page", fields{0xfffffff0, 0x20, 0, 8}, nil, ErrCTBDescriptor},
		{"addr+size wraps", fields{0x800, 0xfffff800, 0, 8}, nil, ErrCTBDescriptor},
		{"len 0", fields{ok.addr, ok.size, 0, 8}, []uint32{0, 1}, ErrCTBMessage},
		{"len past tail", fields{ok.addr, ok.size, 0, 8}, []uint32{5, 1}, ErrCTBMessage},
		{"len past tail across the wrap", fields{ok.addr, ok.size, CTBSize - 4, 4}, []uint32{4, 1}, ErrCTBMessage},
		{"unknown action", fields{ok.addr, ok.size, 0, 8}, []uint32{99<<CTBActionShift | 1, 1}, ErrCTBAction},
		{"short REGISTER_CAP_GPA", fields{ok.addr, ok.size, 0, 12}, []uint32{PVCmdRegisterCapGPA<<CTBActionShift | 2, 1, PVSubmission}, ErrCTBAction},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			r.setup(sharedPA, PVSubmission, 0)
			desc := uint64(sharedPA + PVDescOff)
			for i, v := range []uint32{c.f.addr, c.f.size, c.f.head, c.f.tail} {
				r.store32(desc+uint64(4*i), v)
			}
			for i, v := range c.msg {
				r.store32(sharedPA+uint64(c.f.addr)+uint64((c.f.head+uint32(4*i))%c.f.size), v)
			}
			fence := r.load32(desc + CTBDescFence)
			r.rec.take()
			r.w32(PVInfoBase+OffG2VNotify, G2VPVSendTrigger)
			for _, s := range r.rec.take() {
				if s.gpa < sharedPA || s.gpa+s.n > sharedPA+SharedPageSize {
					t.Fatalf("device accessed %+v outside the shared page", s)
				}
			}
			if st := r.load32(desc + CTBDescStatus); st != StatusEINVAL {
				t.Fatalf("status %#x, want -EINVAL", st)
			}
			if r.d.Error() != c.err {
				t.Fatalf("error %d, want %d", r.d.Error(), c.err)
			}
			wantFence := fence
			if c.err == ErrCTBAction {
				wantFence = 1 // the message was read: its fence is echoed
			}
			if got := r.load32(desc + CTBDescFence); got != wantFence {
				t.Fatalf("fence %d, want %d", got, wantFence)
			}
			if c.err != ErrCTBAction && r.load32(desc+CTBDescHead) != c.f.head {
				t.Fatalf("head moved to %d", r.load32(desc+CTBDescHead))
			}
			r.w32(RegError, 0)
			if r.d.Error() != ErrNone {
				t.Fatal("a write did not clear the error register")
			}
		})
	}
}

// Check 7: submission validity, workloads per valid descriptor, and the
// 1-byte clear of `submitted` at each engine's offset.
func TestCheck7SubmissionValidity(t *testing.T) {
	ctx := uint64(ctxPA)
	good := desc(ctx, 1)
	ggtt := good &^ DescPrivilege
	cases := []struct {
		name      string
		d0, d1    uint64
		workloads uint64
	}{
		{"desc0 invalid", 0, good, 0},
		{"desc0 invalid, desc1 invalid", 0, 0, 0},
		{"desc0 GGTT", ggtt, 0, 0},
		{"desc1 GGTT", good, ggtt, 0},
		{"one valid", good, 0, 1},
		{"one valid, desc1 GGTT but not valid", good, ggtt &^ DescValid, 1},
		{"two valid", good, desc(ctx+hv.PageSize, 2), 2},
	}
	for _, c := range cases {
		for _, e := range Engines {
			t.Run(fmt.Sprintf("%s/%s", c.name, e.Name), func(t *testing.T) {
				r := newRig(t)
				r.setup(sharedPA, PVSubmission, 0)
				r.context(0, seqPA, 1, false)
				r.context(1, seqPA+4, 2, false)
				area := r.fillSub(sharedPA, e.ID, [Ports]uint64{c.d0, c.d1}, [Ports]uint64{ctx, ctx + hv.PageSize})
				r.rec.take()
				r.w32(uint64(e.Base+RegELSP), PVCmdSubmitWorkload)
				spans := r.rec.take()
				r.drain()
				st := r.d.Stats()
				if st.Workloads != c.workloads || st.Completed != c.workloads {
					t.Fatalf("workloads %d completed %d, want %d", st.Workloads, st.Completed, c.workloads)
				}
				if c.workloads == 0 {
					if r.byteAt(area) != 1 || r.d.Error() != ErrSubmitInvalid {
						t.Fatalf("refused submission: submitted %d error %d", r.byteAt(area), r.d.Error())
					}
					return
				}
				if r.byteAt(area) != 0 {
					t.Fatal("submitted not cleared")
				}
				want := []span{{area, SubSize, false}, {area, 1, true}}
				if fmt.Sprint(spans) != fmt.Sprint(want) {
					t.Fatalf("device accesses %v, want %v", spans, want)
				}
				if r.load32(seqPA) != 1 || (c.workloads == 2 && r.load32(seqPA+4) != 2) {
					t.Fatal("workloads did not run")
				}
			})
		}
	}
}

// Check 8: PV raises no context-switch interrupt and writes no CSB; the
// legacy path submits on the 4th write only and raises one per workload.
func TestCheck8NoCSBInPV(t *testing.T) {
	const n = 50
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, 0)
	ctx := r.context(0, seqPA, 7, false)
	for i := 0; i < n; i++ {
		area := r.fillSub(sharedPA, 0, [Ports]uint64{desc(ctx, uint32(i)), 0}, [Ports]uint64{ctx, 0})
		r.w32(uint64(Engines[0].Base+RegELSP), PVCmdSubmitWorkload)
		if r.byteAt(area) != 0 {
			t.Fatalf("submission %d not taken", i)
		}
	}
	r.drain()
	st := r.d.Stats()
	if st.PVSubmits != n || st.Completed != n || st.CtxSwitchIRQs != 0 || r.irq.count() != 0 {
		t.Fatalf("PV: %+v, %d interrupts delivered", st, r.irq.count())
	}
	if r.d.engines[0].csb != [CSBEntries]uint64{} || r.r32(RegIIR) != 0 {
		t.Fatal("PV wrote the CSB or IIR")
	}

	// Legacy, with PV negotiated off.
	l := newRig(t)
	l.setup(sharedPA, 0, 0)
	ctx = l.context(0, seqPA, 7, false)
	reg := uint64(Engines[0].Base + RegELSP)
	dsc := desc(ctx, 0x55)
	for i, v := range []uint32{0, 0, uint32(dsc >> 32), uint32(dsc)} {
		if got := l.d.Stats().Workloads; got != 0 {
			t.Fatalf("submitted after write %d", i)
		}
		l.w32(reg, v)
	}
	l.drain()
	if st := l.d.Stats(); st.LegacySubmits != 1 || st.Completed != 1 || st.CtxSwitchIRQs != 1 {
		t.Fatalf("legacy: %+v", st)
	}
	if l.irq.count() != 1 || l.r32(RegIIR) != IIRCtxSwitch(0) {
		t.Fatalf("interrupts %d, IIR %#x", l.irq.count(), l.r32(RegIIR))
	}
	ptr := l.r32(uint64(Engines[0].Base + RegCSBPtr))
	w := ptr & 0xf
	lo, hi := l.r32(uint64(Engines[0].Base+RegCSBBuf+8*w)), l.r32(uint64(Engines[0].Base+RegCSBBuf+8*w+4))
	if lo&CtxStatusComplete == 0 || hi != 0x55 {
		t.Fatalf("CSB entry %d: %#x %#x", w, lo, hi)
	}
	l.w32(uint64(Engines[0].Base+RegCSBPtr), 0xf00<<16|w<<CSBReadShift)
	if got := l.r32(uint64(Engines[0].Base+RegCSBPtr)) >> CSBReadShift & 0xf; got != w {
		t.Fatalf("CSB read pointer %d, want %d", got, w)
	}
	l.w32(RegIIR, IIRCtxSwitch(0))
	if l.r32(RegIIR) != 0 {
		t.Fatal("IIR not cleared by writing 1")
	}
}

// Check 9: an unknown REGISTER_CAP_GPA cap is acked and ignored.
func TestCheck9UnknownCap(t *testing.T) {
	for _, c := range []uint32{0, PVPPGTT, PVGGTT, 1 << 3, 1 << 31} {
		r := newRig(t)
		r.setup(sharedPA, PVSubmission, 0)
		if st := r.send(sharedPA, PVCmdRegisterCapGPA, c, 0x1234000, 0); st != StatusOK {
			t.Fatalf("cap %#x: status %#x", c, st)
		}
		if r.d.subGPA != sharedPA+PVSubOff || r.d.Error() != ErrNone {
			t.Fatalf("cap %#x changed the submission area to %#x (error %d)", c, r.d.subGPA, r.d.Error())
		}
	}
}

// Check 10: exits (BAR0 accesses) and interrupts per submission, PV vs
// legacy, at the model level; the nightly comparison of latency is the
// suite's. The guest-side costs counted are the driver's: PV writes the
// area in memory and does one ELSP write; legacy does four ELSP writes,
// then reads the CSB pointer and entry and acks IIR and the read pointer
// on the interrupt.
func TestCheck10ExitsPerSubmission(t *testing.T) {
	const n = 100
	pv := newRig(t)
	pv.setup(sharedPA, PVSubmission, 0)
	ctx := pv.context(0, seqPA, 1, false)
	base := pv.d.Stats()
	for i := 0; i < n; i++ {
		pv.fillSub(sharedPA, 0, [Ports]uint64{desc(ctx, 1), 0}, [Ports]uint64{ctx, 0})
		pv.w32(uint64(Engines[0].Base+RegELSP), PVCmdSubmitWorkload)
	}
	pv.drain()
	p := pv.d.Stats()

	lg := newRig(t)
	lg.setup(sharedPA, 0, 0)
	ctx = lg.context(0, seqPA, 1, false)
	lbase := lg.d.Stats()
	for i := 0; i < n; i++ {
		lg.elsp(0, desc(ctx, 1), 0)
		lg.drain()
		// Interrupt handler: IIR, CSB pointer, the entry, acks.
		iir := lg.r32(RegIIR)
		ptr := lg.r32(uint64(Engines[0].Base + RegCSBPtr))
		lg.r32(uint64(Engines[0].Base + RegCSBBuf + 8*(ptr&0xf)))
		lg.w32(uint64(Engines[0].Base+RegCSBPtr), 0xf00<<16|(ptr&0xf)<<CSBReadShift)
		lg.w32(RegIIR, iir)
	}
	l := lg.d.Stats()
	pvExits := float64(p.MMIOReads+p.MMIOWrites-base.MMIOReads-base.MMIOWrites) / n
	lgExits := float64(l.MMIOReads+l.MMIOWrites-lbase.MMIOReads-lbase.MMIOWrites) / n
	t.Logf("per submission: PV %.1f exits %d ctx-switch irqs; legacy %.1f exits %.1f ctx-switch irqs",
		pvExits, p.CtxSwitchIRQs, lgExits, float64(l.CtxSwitchIRQs)/n)
	if p.CtxSwitchIRQs != 0 || l.CtxSwitchIRQs != n || pvExits >= lgExits {
		t.Fatalf("PV %+v vs legacy %+v", p, l)
	}
}

// The shared page's version is written with the page's byte order.
func TestVersionBytes(t *testing.T) {
	r := newRig(t)
	r.setup(sharedPA, PVSubmission, 0)
	var b [4]byte
	if err := r.ga.ReadGPA(sharedPA, b[:]); err != nil {
		t.Fatal(err)
	}
	if binary.LittleEndian.Uint16(b[:]) != PVMajor || binary.LittleEndian.Uint16(b[2:]) != PVMinor {
		t.Fatalf("version bytes %x", b)
	}
}
