package kvm

import (
	"fmt"
	"unsafe"

	"github.com/kvmspec/kvmspec/harness/hv"
	"golang.org/x/sys/unix"
)

// statsFile is an open binary statistics descriptor (KVM_GET_STATS_FD)
// with its descriptors parsed once.
type statsFile struct {
	fd    int
	hdr   statsHeader
	descs []statDesc
}

type statDesc struct {
	statsDesc
	name string
}

func openStats(objFd int) (*statsFile, error) {
	fd, err := ioctl(objFd, kvmGetStatsFD, 0)
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_STATS_FD: %w", err)
	}
	sf := &statsFile{fd: int(fd)}
	unix.CloseOnExec(sf.fd)
	if err := sf.parse(); err != nil {
		sf.close()
		return nil, err
	}
	return sf, nil
}

func (sf *statsFile) close() {
	if sf.fd >= 0 {
		_ = unix.Close(sf.fd)
		sf.fd = -1
	}
}

func (sf *statsFile) parse() error {
	hb := make([]byte, unsafe.Sizeof(statsHeader{}))
	if _, err := unix.Pread(sf.fd, hb, 0); err != nil {
		return fmt.Errorf("read stats header: %w", err)
	}
	sf.hdr = *(*statsHeader)(unsafe.Pointer(&hb[0]))
	descs, err := decodeStatsDescs(sf.fd, sf.hdr)
	if err != nil {
		return err
	}
	sf.descs = descs
	return nil
}

// decodeStatsDescs reads and validates the descriptor table.
func decodeStatsDescs(fd int, h statsHeader) ([]statDesc, error) {
	fixed := int(unsafe.Sizeof(statsDesc{}))
	if h.numDesc > 4096 || h.nameSize > 4096 {
		return nil, fmt.Errorf("stats header: %d descriptors, name size %d: implausible", h.numDesc, h.nameSize)
	}
	each := fixed + int(h.nameSize)
	buf := make([]byte, each*int(h.numDesc))
	if len(buf) > 0 {
		if _, err := unix.Pread(fd, buf, int64(h.descOffset)); err != nil {
			return nil, fmt.Errorf("read stats descriptors: %w", err)
		}
	}
	return parseStatsDescs(buf, int(h.numDesc), int(h.nameSize))
}

// parseStatsDescs decodes the descriptor table bytes; it is fuzzed.
func parseStatsDescs(buf []byte, n, nameSize int) ([]statDesc, error) {
	fixed := int(unsafe.Sizeof(statsDesc{}))
	each := fixed + nameSize
	if n < 0 || nameSize < 0 || each*n > len(buf) {
		return nil, fmt.Errorf("stats descriptors: %d of %d bytes do not fit in %d", n, each, len(buf))
	}
	out := make([]statDesc, 0, n)
	for i := 0; i < n; i++ {
		b := buf[i*each : (i+1)*each]
		var d statDesc
		d.statsDesc = statsDesc{
			flags:      le32(b[0:]),
			exponent:   int16(le16(b[4:])),
			size:       le16(b[6:]),
			offset:     le32(b[8:]),
			bucketSize: le32(b[12:]),
		}
		name := b[fixed:]
		for j, c := range name {
			if c == 0 {
				name = name[:j]
				break
			}
		}
		d.name = string(name)
		out = append(out, d)
	}
	return out, nil
}

func le16(b []byte) uint16 { return uint16(b[0]) | uint16(b[1])<<8 }
func le32(b []byte) uint32 { return uint32(le16(b)) | uint32(le16(b[2:]))<<16 }

var statKinds = map[uint32]string{0: "cumulative", 1: "instant", 2: "peak", 3: "linear-hist", 4: "log-hist"}
var statUnits = map[uint32]string{0: "", 0x10: "bytes", 0x20: "seconds", 0x30: "cycles", 0x40: "boolean"}

func (sf *statsFile) read() (hv.Stats, error) {
	out := make(hv.Stats, 0, len(sf.descs))
	for _, d := range sf.descs {
		if d.size == 0 || d.size > 1024 {
			continue
		}
		buf := make([]byte, 8*int(d.size))
		if _, err := unix.Pread(sf.fd, buf, int64(sf.hdr.dataOffset)+int64(d.offset)); err != nil {
			return nil, fmt.Errorf("read stat %s: %w", d.name, err)
		}
		vals := make([]uint64, d.size)
		for i := range vals {
			vals[i] = uint64(le32(buf[8*i:])) | uint64(le32(buf[8*i+4:]))<<32
		}
		out = append(out, hv.Stat{Name: d.name, Kind: statKinds[d.flags&0xf], Unit: statUnits[d.flags&0xf0], Values: vals})
	}
	return out, nil
}
