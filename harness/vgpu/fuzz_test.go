package vgpu

import (
	"encoding/binary"
	"testing"
)

// fuzzRegs are the BAR0 offsets a fuzzed write goes to, so most writes
// reach a register that does something.
var fuzzRegs = []uint64{
	PVInfoBase + OffMagic, PVInfoBase + OffVersionMajor, PVInfoBase + OffVGTCaps,
	PVInfoBase + OffDisplayReady, PVInfoBase + OffG2VNotify, PVInfoBase + OffPVCaps,
	PVInfoBase + OffSharedPage, PVInfoBase + OffSharedPage + 4, PVInfoBase + OffSharedPage - 1,
	RegError, RegIIR, RegCompleted,
	uint64(Engines[0].Base + RegELSP), uint64(Engines[1].Base + RegELSP),
	uint64(Engines[2].Base + RegELSP), uint64(Engines[3].Base + RegELSP),
	uint64(Engines[0].Base + RegCSBPtr), uint64(Engines[0].Base + RegCSBBuf),
}

// FuzzDevice drives the model with random register writes (g2v triggers,
// ELSP values, shared page GPAs), random CTB descriptors and ring
// contents and random submission areas. Invariants: no panic, no error
// from Access, the transport never touches memory outside the shared page
// and the submission area, and every workload ends exactly once.
func FuzzDevice(f *testing.F) {
	f.Add([]byte{0, 4, 8, 0, 0, 0, 1, 9, 0, 0, 0})
	f.Add(append(make([]byte, 64), 0x55, 0xaa))
	seed := make([]byte, 0, 256)
	// A well-formed setup: register the page, a REGISTER_CAP_GPA message, trigger, PV submit.
	seed = append(seed, 2, 7, 0x00, 0x00, 0x01, 0x00) // shared_page_gpa = 0x10000 (op 2: write reg 7)
	seed = append(seed, 2, 4, G2VSharedPageRegister, 0, 0, 0)
	seed = append(seed, 1, 16, 0, 0, 4, 0, 0, 8, 0, 0, 0, 0, 20, 0, 0, 0) // descriptor: addr 0x800 size 0x800 head 0 tail 20
	seed = append(seed, 1, 0, 4, 0, 4, 0, 5, 0, 1, 0, 0, 0, 4, 0, 0, 0, 0, 4, 1, 0, 0, 0)
	seed = append(seed, 2, 4, G2VPVSendTrigger, 0, 0, 0)
	seed = append(seed, 2, 12, PVCmdSubmitWorkload, 0, 0, 0)
	f.Add(seed)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newRig(t)
		// The shared page and the submission area start out like a
		// driver's; the fuzzer rewrites them.
		r.setup(sharedPA, PVSubmission, 0)
		r.context(0, seqPA, 1, true)
		r.d.engineMem = r.ga
		// The device may touch its shared page (the one registered before
		// or after the access), the submission areas, and the version words
		// of a page being registered.
		type view struct {
			shared, sub, reg uint64
			subSet           bool
		}
		now := func() view { return view{r.d.sharedPage, r.d.subGPA, r.d.sharedGPA, r.d.subSet} }
		allowed := func(s span, vs ...view) bool {
			in := func(lo, n uint64) bool { return s.gpa >= lo && s.gpa-lo < n && s.n <= n-(s.gpa-lo) }
			for _, v := range vs {
				if in(v.shared, SharedPageSize) || in(v.reg, 4) ||
					(v.subSet && in(v.sub, uint64(len(Engines))*SubSize)) {
					return true
				}
			}
			return false
		}
		for len(in) >= 2 {
			op, arg := in[0]%4, in[1]
			in = in[2:]
			switch op {
			case 0: // MMIO read of any size anywhere in a register page
				size := []int{1, 2, 4, 8}[arg%4]
				off := fuzzRegs[int(arg)%len(fuzzRegs)] + uint64(arg>>4)
				r.access(off, make([]byte, size), false)
			case 1: // write bytes into the shared page (descriptor or ring)
				if len(in) < 2 {
					return
				}
				n := int(in[0])
				at := uint64(arg)*16 + uint64(in[1])
				in = in[2:]
				n = min(n, len(in))
				if at+uint64(n) > SharedPageSize {
					at = SharedPageSize - uint64(n)
				}
				if err := r.ga.WriteGPA(sharedPA+at, in[:n]); err != nil {
					t.Fatal(err)
				}
				in = in[n:]
			case 2, 3: // register write
				if len(in) < 4 {
					return
				}
				v := binary.LittleEndian.Uint32(in)
				in = in[4:]
				off := fuzzRegs[int(arg)%len(fuzzRegs)]
				size := []int{4, 4, 1, 2, 8}[int(arg>>5)%5]
				var full [8]byte
				binary.LittleEndian.PutUint32(full[:], v)
				binary.LittleEndian.PutUint32(full[4:], v>>3)
				b := full[:size]
				if off+uint64(size) > BAR0Size {
					continue
				}
				before := now()
				r.rec.take()
				r.access(off, b, true)
				for _, s := range r.rec.take() {
					if !allowed(s, before, now()) {
						t.Fatalf("write %#x to %#x: device touched %+v", v, off, s)
					}
				}
			}
		}
		if err := r.d.Reset(); err != nil {
			t.Fatal(err)
		}
		r.drain()
		if st := r.d.Stats(); st.Completed+st.Failed != st.Workloads {
			t.Fatalf("workloads %d ended %d+%d", st.Workloads, st.Completed, st.Failed)
		}
	})
}
