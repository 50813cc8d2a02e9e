package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
)

// The initramfs is a cpio archive in the kernel's "newc" format
// (Documentation/driver-api/early-userspace/buffer-format.rst): a
// 110-byte ASCII header per entry, the NUL-terminated name, the data,
// each padded to 4 bytes, and a "TRAILER!!!" entry. It is written
// uncompressed: the kernel unpacks it directly, and gunzip under TCG
// would cost seconds of the boot.

const (
	newcMagic   = "070701"
	newcTrailer = "TRAILER!!!"
	newcHeader  = 110
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeCharDev = 0o020000
)

// entry is one member of the archive.
type entry struct {
	Name  string // path without a leading "/", e.g. "bin/busybox"
	Mode  uint32 // type and permission bits, as st_mode
	Data  []byte // file contents or symlink target
	Src   string // file to read the contents from when Data is nil
	Major uint32 // device numbers of a character device
	Minor uint32
	Size  int64 // contents' size (set by the reader and by add)
}

// archive collects entries and writes them in name order, each directory
// before what it holds, so the kernel can create every parent first.
type archive struct {
	entries map[string]*entry
}

func newArchive() *archive { return &archive{entries: map[string]*entry{}} }

// clean checks an archive path: relative, no "..", no empty name.
func clean(name string) (string, error) {
	n := path.Clean(strings.TrimPrefix(name, "/"))
	if n == "." || n == "" || strings.HasPrefix(n, "../") || n == ".." {
		return "", fmt.Errorf("initramfs: bad path %q", name)
	}
	return n, nil
}

// add puts e into the archive with its parent directories; a second
// entry of the same name is an error, so two sources cannot silently
// fight over one path.
func (a *archive) add(e entry) error {
	n, err := clean(e.Name)
	if err != nil {
		return err
	}
	e.Name = n
	if old, ok := a.entries[n]; ok {
		if old.Mode&modeDir != 0 && e.Mode&modeDir != 0 {
			return nil
		}
		return fmt.Errorf("initramfs: %s given twice", n)
	}
	for d := path.Dir(n); d != "."; d = path.Dir(d) {
		if old, ok := a.entries[d]; ok {
			if old.Mode&0o170000 != modeDir {
				return fmt.Errorf("initramfs: %s: parent %s is not a directory", n, d)
			}
			continue
		}
		a.entries[d] = &entry{Name: d, Mode: modeDir | 0o755}
	}
	if e.Mode&0o170000 == modeFile && e.Data == nil {
		st, err := os.Stat(e.Src)
		if err != nil {
			return fmt.Errorf("initramfs: %s: %w", n, err)
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("initramfs: %s: %s is not a regular file", n, e.Src)
		}
		e.Size = st.Size()
	} else {
		e.Size = int64(len(e.Data))
	}
	a.entries[n] = &e
	return nil
}

// addFile adds host file src as name, executable when src is.
func (a *archive) addFile(name, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("initramfs: %s: %w", name, err)
	}
	perm := uint32(0o644)
	if st.Mode()&0o111 != 0 {
		perm = 0o755
	}
	return a.add(entry{Name: name, Mode: modeFile | perm, Src: src})
}

// sorted returns the entries in name order; since a parent's name is a
// prefix of its children's, "a" < "a/b" puts every directory first.
func (a *archive) sorted() []*entry {
	out := make([]*entry, 0, len(a.entries))
	for _, e := range a.entries {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// write writes the archive to w.
func (a *archive) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	var off int64
	ino := uint32(1)
	for _, e := range a.sorted() {
		n, err := writeEntry(bw, e, ino, off)
		if err != nil {
			return err
		}
		off += n
		ino++
	}
	n, err := writeEntry(bw, &entry{Name: newcTrailer}, 0, off)
	if err != nil {
		return err
	}
	off += n
	// Pad the archive to 512 bytes, as cpio(1) does.
	if pad := (512 - off%512) % 512; pad > 0 {
		if _, err := bw.Write(make([]byte, pad)); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func pad4(n int64) int64 { return (4 - n%4) % 4 }

// writeEntry writes one header, name and body at archive offset off and
// returns the bytes written.
func writeEntry(w io.Writer, e *entry, ino uint32, off int64) (int64, error) {
	nlink := uint32(1)
	if e.Mode&0o170000 == modeDir {
		nlink = 2
	}
	if e.Size > 0xffffffff {
		return 0, fmt.Errorf("initramfs: %s: %d bytes, more than newc can hold", e.Name, e.Size)
	}
	hdr := fmt.Sprintf("%s%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		newcMagic, ino, e.Mode, 0, 0, nlink, 0, e.Size, 0, 0, e.Major, e.Minor, len(e.Name)+1, 0)
	var total int64
	write := func(b []byte) error {
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	if err := write([]byte(hdr + e.Name + "\x00")); err != nil {
		return total, err
	}
	if err := write(make([]byte, pad4(off+total))); err != nil {
		return total, err
	}
	switch {
	case e.Data != nil:
		if err := write(e.Data); err != nil {
			return total, err
		}
	case e.Size > 0:
		f, err := os.Open(e.Src)
		if err != nil {
			return total, fmt.Errorf("initramfs: %s: %w", e.Name, err)
		}
		n, err := io.Copy(w, io.LimitReader(f, e.Size))
		f.Close()
		total += n
		if err != nil {
			return total, fmt.Errorf("initramfs: %s: %w", e.Name, err)
		}
		if n != e.Size {
			return total, fmt.Errorf("initramfs: %s: %s changed size while being archived", e.Name, e.Src)
		}
	}
	if err := write(make([]byte, pad4(off+total))); err != nil {
		return total, err
	}
	return total, nil
}

// readArchive parses a newc archive (as written above) back into its
// entries, for the contents listing and for tests.
func readArchive(r io.Reader) ([]entry, error) {
	br := bufio.NewReader(r)
	var out []entry
	var off int64
	read := func(n int64) ([]byte, error) {
		b := make([]byte, n)
		_, err := io.ReadFull(br, b)
		off += n
		return b, err
	}
	for {
		h, err := read(newcHeader)
		if err != nil {
			return out, fmt.Errorf("cpio header at %d: %w", off-newcHeader, err)
		}
		if string(h[:6]) != newcMagic {
			return out, fmt.Errorf("cpio header at %d: magic %q, want %q", off-newcHeader, h[:6], newcMagic)
		}
		var f [13]uint32
		for i := range f {
			v, err := strconv.ParseUint(string(h[6+8*i:14+8*i]), 16, 32)
			if err != nil {
				return out, fmt.Errorf("cpio header at %d: field %d: %w", off-newcHeader, i, err)
			}
			f[i] = uint32(v)
		}
		if f[11] == 0 || f[11] > 4096 {
			return out, fmt.Errorf("cpio header at %d: name size %d", off-newcHeader, f[11])
		}
		nb, err := read(int64(f[11]))
		if err != nil {
			return out, err
		}
		if _, err := read(pad4(off)); err != nil {
			return out, err
		}
		name := strings.TrimSuffix(string(nb), "\x00")
		if name == newcTrailer {
			return out, nil
		}
		data, err := read(int64(f[6]))
		if err != nil {
			return out, fmt.Errorf("cpio %s: %w", name, err)
		}
		if _, err := read(pad4(off)); err != nil {
			return out, err
		}
		out = append(out, entry{Name: name, Mode: f[1], Data: data, Size: int64(f[6]), Major: f[9], Minor: f[10]})
	}
}

// describe is one line of the contents listing: type, mode, size, name.
func (e entry) describe() string {
	kind := map[uint32]string{modeDir: "d", modeFile: "-", modeSymlink: "l", modeCharDev: "c"}[e.Mode&0o170000]
	if kind == "" {
		kind = "?"
	}
	s := fmt.Sprintf("%s%s %10d %s", kind, fs.FileMode(e.Mode & 0o777).String()[1:], e.Size, e.Name)
	switch e.Mode & 0o170000 {
	case modeSymlink:
		s += " -> " + string(e.Data)
	case modeCharDev:
		s += fmt.Sprintf(" (%d,%d)", e.Major, e.Minor)
	}
	return s
}

var errUsage = errors.New("usage")
