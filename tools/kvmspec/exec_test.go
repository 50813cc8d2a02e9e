package main

import (
	"crypto/sha256"
	binenc "encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// execRun writes the binary and layout into a directory and runs
// `kvmspec exec --backend emu` on them.
func execRun(t *testing.T, code []byte, layout string) (result, execResult) {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "prog.bin"), code, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "layout.json")
	if err := os.WriteFile(path, []byte(layout), 0o644); err != nil {
		t.Fatal(err)
	}
	r := kvmspec(t, nil, "exec", "--backend", "emu", path)
	var res execResult
	if r.code != exitUsage {
		if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
			t.Fatalf("exec output is not JSON: %v\n%s\n%s", err, r.stdout, r.stderr)
		}
	}
	return r, res
}

// Machine code of the tests, assembled by hand.
var (
	movEAX2a  = []byte{0xb8, 0x2a, 0, 0, 0} // mov eax, 0x2a
	movEBX7   = []byte{0xbb, 7, 0, 0, 0}    // mov ebx, 7
	addRAXRBX = []byte{0x48, 0x01, 0xd8}    // add rax, rbx
	out80     = []byte{0xe6, 0x80}          // out 0x80, al
	hlt       = []byte{0xf4}
	ud2       = []byte{0x0f, 0x0b}
	stc       = []byte{0xf9}
	jmpSelf   = []byte{0xeb, 0xfe}                                     // jmp $
	store900  = []byte{0x48, 0x89, 0x04, 0x25, 0x00, 0x00, 0x90, 0x00} // mov [0x900000], rax
	store4000 = []byte{0x48, 0xa3, 0, 0, 0, 0x40, 0, 0, 0, 0}          // mov [0x40000000], rax
)

func cat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func TestExecEndConditions(t *testing.T) {
	for _, tc := range []struct {
		name   string
		code   []byte
		layout string
		code0  int
		end    string
		check  func(t *testing.T, res execResult)
	}{
		{"port", cat(movEAX2a, out80, hlt), `{"binary":"prog.bin","end":{"port":"0x80"}}`, exitOK, "port",
			func(t *testing.T, res execResult) {
				if res.Regs["rax"] != 0x2a || res.Exits != 1 || len(res.Trace) != 1 || res.Trace[0].Kind != "io" {
					t.Errorf("rax %#x, exits %d, trace %+v", uint64(res.Regs["rax"]), res.Exits, res.Trace)
				}
			}},
		{"hlt", cat(movEBX7, hlt), `{"binary":"prog.bin","mode":"cpl0","end":{"hlt":true}}`, exitOK, "hlt",
			func(t *testing.T, res execResult) {
				if res.Regs["rbx"] != 7 || res.Mode != "cpl0" {
					t.Errorf("rbx %#x mode %s", uint64(res.Regs["rbx"]), res.Mode)
				}
			}},
		{"expected exception", ud2, `{"binary":"prog.bin","end":{"exception":true}}`, exitOK, "exception",
			func(t *testing.T, res execResult) {
				if res.Exception == nil || res.Exception.Vector != 6 || res.Exception.RIP != 0x700000 {
					t.Errorf("exception %+v", res.Exception)
				}
			}},
		{"unexpected exception", ud2, `{"binary":"prog.bin","end":{"port":128}}`, exitFailed, "exception", nil},
		{"exit limit", cat(out80, []byte{0xeb, 0xfc}), `{"binary":"prog.bin","end":{"max_exits":5}}`, exitFailed, "exit-limit",
			func(t *testing.T, res execResult) {
				if res.Exits != 5 || len(res.Trace) != 5 {
					t.Errorf("exits %d trace %d", res.Exits, len(res.Trace))
				}
			}},
		{"time limit", jmpSelf, `{"binary":"prog.bin","end":{"timeout":"200ms"}}`, exitFailed, "timeout", nil},
		{"initial registers and flags", cat(addRAXRBX, stc, out80),
			`{"binary":"prog.bin","regs":{"rax":"0x1000","rbx":34},"end":{"port":"0x80"}}`, exitOK, "port",
			func(t *testing.T, res execResult) {
				if res.Regs["rax"] != 0x1022 || !slices.Contains(res.Flags, "CF") {
					t.Errorf("rax %#x flags %v", uint64(res.Regs["rax"]), res.Flags)
				}
			}},
		{"load address and entry", cat(hlt, movEAX2a, out80), `{"binary":"prog.bin","load":"0xa00000","entry":"0xa00001","end":{"port":128}}`, exitOK, "port",
			func(t *testing.T, res execResult) {
				// RIP at the OUT (0xa00006): the emu's default, VMX's rule.
				if res.Regs["rax"] != 0x2a || res.Trace[0].RIP != 0xa00006 {
					t.Errorf("rax %#x trace %+v", uint64(res.Regs["rax"]), res.Trace)
				}
			}},
		{"read-only mapping faults", cat(store900, out80), `{"binary":"prog.bin","map":[{"gva":"0x900000","size":4096,"perm":"r"}],"end":{"exception":true}}`, exitOK, "exception",
			func(t *testing.T, res execResult) {
				if res.Exception == nil || res.Exception.Vector != 14 || res.Exception.CR2 != 0x900000 || res.Exception.ErrorCode&2 == 0 {
					t.Errorf("exception %+v", res.Exception)
				}
			}},
		{"writable mapping and dump", cat(movEAX2a, store900, out80),
			`{"binary":"prog.bin","map":[{"gva":"0x900000","size":4096,"perm":"rwu"}],"end":{"port":128},"dump":[{"gpa":"0x900000","size":8,"bytes":true}]}`, exitOK, "port",
			func(t *testing.T, res execResult) {
				if len(res.Memory) != 1 || res.Memory[0].Hex != "2a00000000000000" {
					t.Errorf("memory %+v", res.Memory)
				}
				sum := sha256.Sum256([]byte{0x2a, 0, 0, 0, 0, 0, 0, 0})
				if res.Memory[0].SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("sha256 %s", res.Memory[0].SHA256)
				}
			}},
		{"read-only slot write exits as mmio", cat(movEAX2a, store4000, out80),
			`{"binary":"prog.bin","slots":[{"slot":1,"gpa":"0x40000000","size":"0x200000","read_only":true}],
			  "map":[{"gva":"0x40000000","gpa":"0x40000000","size":4096,"perm":"rwu"}],"end":{"port":128}}`, exitOK, "port",
			func(t *testing.T, res execResult) {
				if len(res.Trace) != 2 || res.Trace[0].Kind != "mmio" || !strings.Contains(res.Trace[0].Detail, "0x40000000") {
					t.Errorf("trace %+v", res.Trace)
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, res := execRun(t, tc.code, tc.layout)
			if r.code != tc.code0 || res.End != tc.end || res.Backend != "emu" {
				t.Fatalf("exit %d end %q (want %d, %q)\n%s\n%s", r.code, res.End, tc.code0, tc.end, r.stdout, r.stderr)
			}
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
}

func TestExecUsageErrors(t *testing.T) {
	for _, tc := range []struct{ name, layout, want string }{
		{"not json", `{`, "layout"},
		{"unknown field", `{"binary":"prog.bin","entrypoint":1}`, "unknown field"},
		{"no binary", `{}`, "no \"binary\""},
		{"missing binary", `{"binary":"nope.bin"}`, "no such file"},
		{"bad mode", `{"binary":"prog.bin","mode":"cpl2"}`, "want cpl0 or cpl3"},
		{"bad perm", `{"binary":"prog.bin","map":[{"gva":0,"size":4096,"perm":"rz"}]}`, "rwxu"},
		{"bad register", `{"binary":"prog.bin","regs":{"cr3":1}}`, "unknown register"},
		{"bad number", `{"binary":"prog.bin","load":"0xzz"}`, "want a number"},
		{"bad timeout", `{"binary":"prog.bin","end":{"timeout":"-1s"}}`, "positive duration"},
		{"entry outside", `{"binary":"prog.bin","entry":"0x100"}`, "outside"},
		{"bad memory size", `{"binary":"prog.bin","mem_size":12345}`, "memory size"},
	} {
		r, _ := execRun(t, hlt, tc.layout)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: exit %d stderr %q, want 2 and %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
}

// elf64 builds a minimal x86-64 ELF64 executable: one PT_LOAD segment of
// code at vaddr, memsz bss bytes beyond it, entering at entry.
func elf64(code []byte, vaddr, entry, bss uint64) []byte {
	const ehsize, phsize = 64, 56
	b := make([]byte, ehsize+phsize)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // ELFCLASS64, little-endian, version 1
	le := binenc.LittleEndian
	le.PutUint16(b[16:], 2)  // ET_EXEC
	le.PutUint16(b[18:], 62) // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[24:], entry)
	le.PutUint64(b[32:], ehsize) // e_phoff
	le.PutUint16(b[52:], ehsize)
	le.PutUint16(b[54:], phsize)
	le.PutUint16(b[56:], 1) // e_phnum
	ph := b[ehsize:]
	le.PutUint32(ph[0:], 1) // PT_LOAD
	le.PutUint32(ph[4:], 5) // R+X
	le.PutUint64(ph[8:], ehsize+phsize)
	le.PutUint64(ph[16:], vaddr)
	le.PutUint64(ph[24:], vaddr)
	le.PutUint64(ph[32:], uint64(len(code)))
	le.PutUint64(ph[40:], uint64(len(code))+bss)
	le.PutUint64(ph[48:], 1)
	return append(b, code...)
}

// An ELF64 executable is loaded at its segment's address and entered at
// e_entry; its bss is zero.
func TestExecELF(t *testing.T) {
	code := cat(hlt, movEAX2a, out80, []byte{0xff, 0xff, 0xff, 0xff})
	r, res := execRun(t, elf64(code, 0xa00000, 0xa00001, 32),
		`{"binary":"prog.bin","end":{"port":128},"dump":[{"gpa":"0xa00008","size":8,"bytes":true}]}`)
	if r.code != exitOK || res.End != "port" || res.Regs["rax"] != 0x2a || res.Trace[0].RIP != 0xa00006 { // at the OUT

		t.Fatalf("exit %d end %q rax %#x\n%s%s", r.code, res.End, uint64(res.Regs["rax"]), r.stdout, r.stderr)
	}
	if res.Memory[0].Hex != "ffffffff00000000" {
		t.Errorf("segment tail and bss: %s", res.Memory[0].Hex)
	}
	for _, tc := range []struct {
		name, layout string
		bin          []byte
		want         string
	}{
		{"load with elf", `{"binary":"prog.bin","load":"0xa00000"}`, elf64(hlt, 0xa00000, 0xa00000, 0), "set by the ELF"},
		{"truncated elf", `{"binary":"prog.bin"}`, elf64(hlt, 0xa00000, 0xa00000, 0)[:70], "elf"},
		{"huge bss", `{"binary":"prog.bin"}`, elf64(hlt, 0xa00000, 0xa00000, 1<<40), "more than"},
	} {
		r, _ := execRun(t, tc.bin, tc.layout)
		if r.code != exitUsage || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%s: exit %d stderr %q", tc.name, r.code, r.stderr)
		}
	}
}

// The layout file and the binary are untrusted input: no panic, and
// either a config or an error.
func FuzzExecConfig(f *testing.F) {
	f.Add([]byte(`{"binary":"prog.bin","end":{"port":"0x80"},"map":[{"gva":0,"size":4096,"perm":"rw"}]}`), hlt)
	f.Add([]byte(`{"binary":"prog.bin"}`), elf64(hlt, 0xa00000, 0xa00000, 16))
	f.Fuzz(func(t *testing.T, layout, bin []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "prog.bin"), bin, 0o644); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, "layout.json")
		if err := os.WriteFile(path, layout, 0o644); err != nil {
			t.Fatal(err)
		}
		cfg, img, err := readExecConfig(path)
		if err == nil && (cfg == nil || img == nil || len(img.code) > maxExecBinary) {
			t.Fatalf("no error, config %v image %v", cfg, img)
		}
	})
}
