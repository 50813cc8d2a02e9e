package lightnvm

import (
	"encoding/binary"
)

// maxLogBytes bounds one Get Log Page transfer, so a guest's NUMD cannot
// make the device allocate without limit.
const maxLogBytes = 16 << 20

// execute runs one command fetched from q.
func (d *Device) execute(q *subQueue, c Command) outcome {
	if q.id == 0 {
		return outcome{cqe: Completion{Status: d.admin(c)}}
	}
	return d.io(c)
}

func (d *Device) admin(c Command) Status {
	switch c.Opcode {
	case AdminCreateCQ:
		return d.createCQ(c)
	case AdminCreateSQ:
		return d.createSQ(c)
	case AdminDeleteSQ:
		qid := int(c.CDW10 & 0xffff)
		if qid == 0 || qid > MaxQueueID || d.sqs[qid] == nil {
			return StatusInvalidQID | StatusDNR
		}
		d.cqs[d.sqs[qid].cqid].sqs--
		d.sqs[qid] = nil
		return StatusSuccess
	case AdminDeleteCQ:
		qid := int(c.CDW10 & 0xffff)
		if qid == 0 || qid > MaxQueueID || d.cqs[qid] == nil {
			return StatusInvalidQID | StatusDNR
		}
		if d.cqs[qid].sqs > 0 {
			return StatusInvalidQDeletion | StatusDNR
		}
		d.cqs[qid] = nil
		return StatusSuccess
	case AdminIdentify:
		switch c.CDW10 & 0xff {
		case CNSController:
			return d.transferOut(c, controllerIdentity())
		case CNSNamespace:
			if c.NSID != 1 {
				return StatusInvalidNamespace | StatusDNR
			}
			return d.transferOut(c, d.geo.namespaceIdentity())
		}
		return StatusInvalidField | StatusDNR
	case AdminGeometry:
		if c.NSID != 1 {
			return StatusInvalidNamespace | StatusDNR
		}
		return d.transferOut(c, d.geo.Identity())
	case AdminGetLogPage:
		return d.getLog(c)
	case AdminGetBadBlocks:
		if d.geo.Version != V12 {
			return StatusInvalidOpcode | StatusDNR
		}
		a, ok := d.geo.DecodePPA(c.SPBA())
		if !ok {
			return StatusInvalidField | StatusDNR
		}
		return d.transferOut(c, d.media.badBlockTable(a.Group, a.PU))
	}
	return StatusInvalidOpcode | StatusDNR
}

func queueArgs(c Command) (qid int, size uint32) {
	return int(c.CDW10 & 0xffff), c.CDW10>>16 + 1
}

func (d *Device) createCQ(c Command) Status {
	qid, size := queueArgs(c)
	ien, iv := c.CDW11&2 != 0, int(c.CDW11>>16)
	switch {
	case qid == 0 || qid > MaxQueueID || d.cqs[qid] != nil:
		return StatusInvalidQID | StatusDNR
	case size < 2 || size > MaxQueueEntries:
		return StatusInvalidQSize | StatusDNR
	case c.CDW11&1 == 0 || c.PRP1%pageSize != 0 || c.PRP1 == 0:
		// Only physically contiguous, page-aligned queues (CAP.CQR).
		return StatusInvalidField | StatusDNR
	case ien && iv >= MSIXVectors:
		return StatusInvalidIntVector | StatusDNR
	}
	d.cqs[qid] = &compQueue{id: qid, base: c.PRP1, size: size, phase: true, ien: ien, iv: iv}
	return StatusSuccess
}

func (d *Device) createSQ(c Command) Status {
	qid, size := queueArgs(c)
	cqid := int(c.CDW11 >> 16)
	switch {
	case qid == 0 || qid > MaxQueueID || d.sqs[qid] != nil:
		return StatusInvalidQID | StatusDNR
	case size < 2 || size > MaxQueueEntries:
		return StatusInvalidQSize | StatusDNR
	case c.CDW11&1 == 0 || c.PRP1%pageSize != 0 || c.PRP1 == 0:
		return StatusInvalidField | StatusDNR
	case cqid == 0 || cqid > MaxQueueID || d.cqs[cqid] == nil:
		return StatusInvalidCQ | StatusDNR
	}
	d.sqs[qid] = &subQueue{id: qid, base: c.PRP1, size: size, cqid: cqid}
	d.cqs[cqid].sqs++
	return StatusSuccess
}

// getLog serves Get Log Page for the report-chunk log: NUMD (0-based
// dwords) from dwords 10-11, the byte offset from 12-13.
func (d *Device) getLog(c Command) Status {
	lid := c.CDW10 & 0xff
	numd := uint64(c.CDW11&0xffff)<<16 | uint64(c.CDW10>>16)
	n := (numd + 1) * 4
	off := uint64(c.CDW12) | uint64(c.CDW13)<<32
	switch {
	case lid != LogReportChunk:
		return StatusInvalidLogPage | StatusDNR
	case c.NSID != 1:
		return StatusInvalidNamespace | StatusDNR
	case off%4 != 0 || n > maxLogBytes:
		return StatusInvalidField | StatusDNR
	}
	b, st := d.media.log(off, n)
	if st != StatusSuccess {
		return st | StatusDNR
	}
	return d.transferOut(c, b)
}

// transferOut copies b to the command's PRPs.
func (d *Device) transferOut(c Command, b []byte) Status {
	segs, err := prpList(d.mem, c.PRP1, c.PRP2, uint64(len(b)))
	if err == nil {
		err = copyOut(d.mem, segs, b)
	}
	if err != nil {
		d.fail("opcode %#x: data transfer: %v", c.Opcode, err)
		return StatusDataTransferError | StatusDNR
	}
	return StatusSuccess
}

// lbaList reads a vector command's addresses: SPBA itself for one LBA,
// else nlb little-endian addresses at SPBA.
func (d *Device) lbaList(c Command) ([]uint64, Status) {
	n := c.NLB() + 1
	if n > MaxVectorLBAs {
		return nil, StatusInvalidField | StatusDNR
	}
	if n == 1 {
		return []uint64{c.SPBA()}, StatusSuccess
	}
	raw := make([]byte, 8*n)
	if err := d.mem.ReadGPA(c.SPBA(), raw); err != nil {
		d.fail("LBA list at %#x: %v", c.SPBA(), err)
		return nil, StatusDataTransferError | StatusDNR
	}
	lbas := make([]uint64, n)
	for i := range lbas {
		lbas[i] = binary.LittleEndian.Uint64(raw[8*i:])
	}
	return lbas, StatusSuccess
}

// io runs one I/O command.
func (d *Device) io(c Command) outcome {
	var o outcome
	if c.Opcode != IOVectorReset && c.Opcode != IOVectorWrite && c.Opcode != IOVectorRead {
		o.cqe.Status = StatusInvalidOpcode | StatusDNR
		return o
	}
	if c.NSID != 1 {
		o.cqe.Status = StatusInvalidNamespace | StatusDNR
		return o
	}
	lbas, st := d.lbaList(c)
	if st != StatusSuccess {
		o.cqe.Status = st
		return o
	}
	g := d.geo
	ss := uint64(g.SectorSize)
	var res vecResult
	switch c.Opcode {
	case IOVectorWrite:
		buf := make([]byte, uint64(len(lbas))*ss)
		segs, err := prpList(d.mem, c.PRP1, c.PRP2, uint64(len(buf)))
		if err == nil {
			err = copyIn(d.mem, segs, buf)
		}
		if err != nil {
			d.fail("vector write: data: %v", err)
			o.cqe.Status = StatusDataTransferError | StatusDNR
			return o
		}
		res, err = d.media.write(lbas, buf)
		if err != nil {
			d.fail("%v", err)
			o.cqe.Status = StatusInternalError | StatusDNR
			return o
		}
		o.changed = true
		o.delay = d.latency(g.WriteTyp, g.WriteMax)
	case IOVectorRead:
		buf := make([]byte, uint64(len(lbas))*ss)
		var err error
		res, err = d.media.read(lbas, buf)
		if err != nil {
			d.fail("%v", err)
			o.cqe.Status = StatusInternalError | StatusDNR
			return o
		}
		if g.Version == V12 {
			// 1.2 reports every unwritten page as an empty page.
			addrs, valid := d.media.decode(lbas)
			for i := range lbas {
				if !d.media.readable(addrs[i], valid[i]) {
					res.fail(i, Status12EmptyPage)
				}
			}
		}
		if st := d.transferOut(c, buf); st != StatusSuccess {
			o.cqe.Status = st
			return o
		}
		o.delay = d.latency(g.ReadTyp, g.ReadMax)
	case IOVectorReset:
		res = d.media.reset(lbas)
		o.changed = true
		o.delay = d.latency(g.ResetTyp, g.ResetMax)
		if c.MPTR != 0 {
			// The updated descriptors, one per LBA list index.
			out := make([]byte, len(lbas)*ChunkDescriptorSize)
			addrs, valid := d.media.decode(lbas)
			for i := range lbas {
				if valid[i] {
					desc := d.media.chunks[g.ChunkIndex(addrs[i])].Descriptor()
					copy(out[i*ChunkDescriptorSize:], desc[:])
				}
			}
			if err := d.mem.WriteGPA(c.MPTR, out); err != nil {
				d.fail("vector reset: descriptors at %#x: %v", c.MPTR, err)
				res.status = StatusDataTransferError | StatusDNR
			}
		}
	}
	if g.Version == V12 && res.status != StatusSuccess && res.status.Code() != Status12EmptyPage.Code() {
		switch res.status.Code() {
		case StatusWriteFault, StatusChunkEarlyClose, StatusOutOfOrderWrite, StatusWriteNextUnit:
			res.status = Status12FailWrite
		case StatusReadHighECC:
			res.status = Status12WarnHighEC
		}
	}
	o.cqe.Status, o.cqe.Result = res.status, res.failed
	return o
}
