package vgpu

import "encoding/binary"

// validDescs applies the host's execlist checks, shared by both paths:
// desc[0] must be valid and every valid descriptor must use PPGTT
// (privilege_access), else upstream says "unexpected GGTT elsp
// submission" and returns -EINVAL. It returns how many descriptors are
// reports whether the pair is acceptable.
func validDescs(descs [Ports]uint64) bool {
	if descs[0]&DescValid == 0 {
		return false
	}
	for _, x := range descs {
		if x&DescValid != 0 && x&DescPrivilege == 0 {
			return false
		}
	}
	return true
}

// submit validates a pair and queues one workload per valid descriptor
// (d.mu held); it reports whether the pair was accepted.
func (d *Device) submit(e int, descs, ctx [Ports]uint64, legacy bool) bool {
	if !validDescs(descs) {
		d.reject(ErrSubmitInvalid)
		return false
	}
	if legacy {
		d.stats.LegacySubmits++
	} else {
		d.stats.PVSubmits++
	}
	for i, x := range descs {
		if x&DescValid != 0 {
			d.queue(workload{engine: e, desc: x, ctx: ctx[i], legacy: legacy})
		}
	}
	return true
}

// reject counts a refused submission and records why.
func (d *Device) reject(code uint32) {
	d.stats.Rejected++
	d.setError(code)
}

// elspWrite is a guest write to engine e's ELSP, d.mu held. With
// PV_SUBMISSION negotiated, the value PV_CMD_SUBMIT_WORKLOAD is a PV
// submission and does not count as an ELSP dword; otherwise each write
// fills elsp[3-index] and the fourth submits the pair (upstream
// elsp_mmio_write: the guest writes port 1's upper and lower dwords,
// then port 0's).
func (d *Device) elspWrite(e int, v uint32) {
	if d.pvCaps&PVSubmission != 0 && v == PVCmdSubmitWorkload {
		d.pvSubmit(e)
		return
	}
	s := d.engines[e]
	s.elsp[3-s.elspIdx] = v
	last := s.elspIdx == 3
	s.elspIdx = (s.elspIdx + 1) & 3
	if !last {
		return
	}
	descs := [Ports]uint64{
		uint64(s.elsp[1])<<32 | uint64(s.elsp[0]),
		uint64(s.elsp[3])<<32 | uint64(s.elsp[2]),
	}
	// The model's GGTT is the identity: the context is at the LRCA.
	d.submit(e, descs, [Ports]uint64{descs[0] & DescLRCAMask, descs[1] & DescLRCAMask}, true)
}

// pvSubmit is handle_pv_submission for engine e, d.mu held: read the
// engine's area, validate, queue one workload per valid descriptor, then
// clear `submitted` with a 1-byte write. A refused submission leaves
// `submitted` set, so the guest's wait times out, as upstream.
func (d *Device) pvSubmit(e int) {
	if !d.subSet {
		d.reject(ErrSubmitNoArea)
		return
	}
	area := d.subGPA + uint64(e)*SubSize
	if area < d.subGPA {
		d.reject(ErrSubmitRead)
		return
	}
	var raw [SubSize]byte
	if err := d.mem.ReadGPA(area, raw[:]); err != nil {
		d.reject(ErrSubmitRead)
		return
	}
	le := binary.LittleEndian
	var descs, ctx [Ports]uint64
	for i := range descs {
		descs[i] = le.Uint64(raw[SubDescs+8*i:])
		ctx[i] = le.Uint64(raw[SubCtxGPA+8*i:])
	}
	if !d.submit(e, descs, ctx, false) {
		return
	}
	if err := d.mem.WriteGPA(area+SubSubmitted, []byte{0}); err != nil {
		d.setError(ErrSubmitWriteBack)
	}
}

// queue hands w to its engine, d.mu held; a full queue fails it at once.
func (d *Device) queue(w workload) {
	w.gen = d.gen
	d.stats.Workloads++
	d.inflight++
	if d.closed {
		d.finishLocked(w, false)
		return
	}
	select {
	case d.engines[w.engine].queue <- w:
	default:
		d.setError(ErrQueueFull)
		d.finishLocked(w, false)
	}
}
