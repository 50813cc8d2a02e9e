package lightnvm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
)

// sectorStore holds sector data.
type sectorStore interface {
	WriteAt(p []byte, off int64) (int, error)
	// ReadSector fills p; never-written bytes read as zeroes.
	ReadSector(p []byte, off int64) error
	Close() error
}

// memStore keeps sectors in memory, sparsely, for devices without a
// backing file.
type memStore struct {
	mu      sync.Mutex
	sectors map[int64][]byte
}

func (s *memStore) WriteAt(p []byte, off int64) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sectors == nil {
		s.sectors = map[int64][]byte{}
	}
	s.sectors[off] = append([]byte(nil), p...)
	return len(p), nil
}

func (s *memStore) ReadSector(p []byte, off int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d, ok := s.sectors[off]; ok && len(d) == len(p) {
		copy(p, d)
	} else {
		clear(p)
	}
	return nil
}

func (s *memStore) Close() error { return nil }

// fileStore keeps sectors in a sparse file at their linear offset.
type fileStore struct{ f *os.File }

func (s fileStore) WriteAt(p []byte, off int64) (int, error) { return s.f.WriteAt(p, off) }

func (s fileStore) ReadSector(p []byte, off int64) error {
	n, err := s.f.ReadAt(p, off)
	if errors.Is(err, io.EOF) {
		clear(p[n:]) // beyond the file's end: never written
		return nil
	}
	return err
}

func (s fileStore) Close() error { return s.f.Close() }

// The chunk-state file: a header, one record per chunk in report-chunk
// order, and a CRC-32C of everything before it. It is replaced whole by
// write-to-temporary and rename, so a process killed at any instant
// leaves either the old or the new file, never a mix.
const (
	stateMagic    = "KVMSOCSS"
	stateFormat   = 1
	stateHeader   = 8 + 4 + 8 + 4 // magic, format, geometry fingerprint, chunk count
	stateRecord   = 16            // state, type, wi, flags, pe (u32), wp (u64)
	flagResetFail = 1 << 0
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeState serializes the chunk table.
func encodeState(g Geometry, chunks []Chunk) []byte {
	b := make([]byte, stateHeader+len(chunks)*stateRecord+4)
	le := binary.LittleEndian
	copy(b, stateMagic)
	le.PutUint32(b[8:], stateFormat)
	le.PutUint64(b[12:], g.fingerprint())
	le.PutUint32(b[20:], uint32(len(chunks)))
	for i, c := range chunks {
		r := b[stateHeader+i*stateRecord:]
		r[0], r[1], r[2] = uint8(c.State), uint8(c.Type), c.WI
		if c.ResetFails {
			r[3] = flagResetFail
		}
		le.PutUint32(r[4:], c.PE)
		le.PutUint64(r[8:], c.WP)
	}
	n := len(b) - 4
	le.PutUint32(b[n:], crc32.Checksum(b[:n], castagnoli))
	return b
}

// decodeState checks and loads a state file's bytes into chunks (which
// hold the geometry's defaults: slba, cnlb). Errors say what is wrong;
// the caller names the file.
func decodeState(g Geometry, b []byte, chunks []Chunk) error {
	want := stateHeader + len(chunks)*stateRecord + 4
	le := binary.LittleEndian
	switch {
	case len(b) < stateHeader || string(b[:8]) != stateMagic:
		if len(b) < 8 || string(b[:8]) != stateMagic {
			return fmt.Errorf("not a chunk-state file (bad magic)")
		}
		return fmt.Errorf("truncated: %d bytes, header needs %d", len(b), stateHeader)
	case le.Uint32(b[8:]) != stateFormat:
		return fmt.Errorf("format %d, want %d", le.Uint32(b[8:]), stateFormat)
	case le.Uint64(b[12:]) != g.fingerprint():
		return fmt.Errorf("written for another geometry (fingerprint %#x, this device %#x)", le.Uint64(b[12:]), g.fingerprint())
	case int(le.Uint32(b[20:])) != len(chunks):
		return fmt.Errorf("%d chunks, the geometry has %d", le.Uint32(b[20:]), len(chunks))
	case len(b) < want:
		return fmt.Errorf("truncated: %d bytes, want %d", len(b), want)
	case len(b) > want:
		return fmt.Errorf("%d trailing bytes", len(b)-want)
	}
	if sum, got := crc32.Checksum(b[:want-4], castagnoli), le.Uint32(b[want-4:]); sum != got {
		return fmt.Errorf("checksum mismatch (stored %#08x, computed %#08x)", got, sum)
	}
	for i := range chunks {
		r := b[stateHeader+i*stateRecord:]
		c := &chunks[i]
		c.State, c.Type, c.WI = ChunkState(r[0]), ChunkType(r[1]), r[2]
		c.ResetFails = r[3]&flagResetFail != 0
		c.PE, c.WP = le.Uint32(r[4:]), le.Uint64(r[8:])
		switch c.State {
		case ChunkFree, ChunkOpen, ChunkClosed, ChunkOffline:
		default:
			return fmt.Errorf("chunk %d: invalid state %#x", i, r[0])
		}
		if c.WP > c.CNLB || c.State == ChunkFree && c.WP != 0 {
			return fmt.Errorf("chunk %d: %v with write pointer %d (cnlb %d)", i, c.State, c.WP, c.CNLB)
		}
		if r[3]&^flagResetFail != 0 || (c.Type != ChunkSeq && c.Type != ChunkRandom) {
			return fmt.Errorf("chunk %d: invalid type %#x or flags %#x", i, r[1], r[3])
		}
	}
	// The device never opens more chunks than maxoc/maxocpu; a file that
	// does was not written by it.
	open, openPU := 0, make(map[int]int)
	for i, c := range chunks {
		if c.State == ChunkOpen {
			open++
			openPU[i/g.Chunks]++
			if openPU[i/g.Chunks] > g.MaxOCPU {
				return fmt.Errorf("parallel unit %d has more than maxocpu %d open chunks", i/g.Chunks, g.MaxOCPU)
			}
		}
	}
	if open > g.MaxOC {
		return fmt.Errorf("%d open chunks, more than maxoc %d", open, g.MaxOC)
	}
	return nil
}

// stateFile persists the chunk table at path.
type stateFile struct {
	path string
	sync bool // fsync before rename: survives a power cut, not only a kill
}

// load reads the file into chunks; found is false when it does not exist.
func (s stateFile) load(g Geometry, chunks []Chunk) (found bool, err error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("lightnvm: read chunk state: %w", err)
	}
	if err := decodeState(g, b, chunks); err != nil {
		return true, fmt.Errorf("lightnvm: chunk-state file %s: %w", s.path, err)
	}
	return true, nil
}

// save replaces the file atomically.
func (s stateFile) save(g Geometry, chunks []Chunk) error {
	tmp := s.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("lightnvm: save chunk state: %w", err)
	}
	if _, err := f.Write(encodeState(g, chunks)); err != nil {
		f.Close()
		return fmt.Errorf("lightnvm: save chunk state %s: %w", tmp, err)
	}
	if s.sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("lightnvm: save chunk state %s: fsync: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("lightnvm: save chunk state %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		return fmt.Errorf("lightnvm: save chunk state: %w", err)
	}
	return nil
}
