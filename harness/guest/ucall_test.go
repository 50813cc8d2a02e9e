package guest

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/emu"
)

func ucallPage(cmd, site, n uint64, args ...uint64) []byte {
	b := make([]byte, ucArgs+8*MaxUcallArgs)
	binary.LittleEndian.PutUint64(b[ucCmd:], cmd)
	binary.LittleEndian.PutUint64(b[ucSite:], site)
	binary.LittleEndian.PutUint64(b[ucNArgs:], n)
	for i, a := range args {
		binary.LittleEndian.PutUint64(b[ucArgs+8*i:], a)
	}
	return b
}

// testSites is a host record with one SYNC site (1) and one ASSERT site (2).
func testSites(id uint64) *Site {
	switch id {
	case 1:
		return &Site{ID: 1, Cmd: UcallSync, File: "x_test.go", Line: 7}
	case 2:
		return &Site{ID: 2, Cmd: UcallAssert, File: "x_test.go", Line: 9, Msg: "m"}
	}
	return nil
}

func TestParseUcall(t *testing.T) {
	cases := []struct {
		name    string
		page    []byte
		wantErr string // substring of the error; "" means it decodes
		check   func(*Ucall) bool
	}{
		{"sync", ucallPage(uint64(UcallSync), 1, 2, 5, 6), "", func(u *Ucall) bool {
			return u.Cmd == UcallSync && u.Stage() == 5 && len(u.Args) == 2 && u.Site.Line == 7
		}},
		{"assert", ucallPage(uint64(UcallAssert), 2, 1, 3), "", func(u *Ucall) bool { return u.Site.Msg == "m" && u.Args[0] == 3 }},
		{"runtime exception report has no site", ucallPage(uint64(UcallUnhandled), 0, 4, 14, 0, 0x700000, 0x10), "", func(u *Ucall) bool {
			return u.Site == nil && len(u.Args) == 4
		}},
		{"unknown site", ucallPage(uint64(UcallAssert), 99, 0), "site 99 (0x63): the host never issued it", nil},
		{"anonymous site of a flat binary", ucallPage(uint64(UcallSync), 0, 1, 9), "", func(u *Ucall) bool { return u.Site == nil && u.Stage() == 9 }},
		{"site of another command", ucallPage(uint64(UcallAssert), 1, 0), "site 1 (0x1): it was issued for SYNC", nil},
		{"unknown command", ucallPage(77, 1, 0), "command 77 (0x4d): not a command", nil},
		{"command none", ucallPage(uint64(UcallNone), 1, 0), "command 0 (0x0)", nil},
		{"too many arguments", ucallPage(uint64(UcallSync), 1, MaxUcallArgs+1), "argument count 9 (0x9): a ucall carries at most 8", nil},
		{"huge count", ucallPage(uint64(UcallAssert), 2, 1<<63), "argument count 9223372036854775808", nil},
		{"sync without a stage", ucallPage(uint64(UcallSync), 1, 0), "argument count 0 (0x0): SYNC takes 1 to 8", nil},
		{"done with arguments", ucallPage(uint64(UcallDone), 3, 1), "DONE takes 0 to 0", nil},
		{"short exception report", ucallPage(uint64(UcallUnhandled), 0, 2), "UNHANDLED takes 4 to 4", nil},
		{"short page", make([]byte, 10), "short", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := parseUcall(c.page, 3, testSites)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "vcpu 3") {
					t.Fatalf("err = %v, want one naming vcpu 3 and %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !c.check(u) || u.VCPU != 3 {
				t.Fatalf("parseUcall = %+v, %v", u, err)
			}
		})
	}
}

// FuzzParseUcall: whatever a hostile guest writes into its ucall page, the
// host decodes it or says why not, and never panics, also when it turns
// the decoded ucall into the error the run loop reports.
func FuzzParseUcall(f *testing.F) {
	f.Add(ucallPage(uint64(UcallSync), 1, 2, 5, 6))
	f.Add(ucallPage(uint64(UcallAssert), 2, 8, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add(ucallPage(uint64(UcallAssert), 99, 0))
	f.Add(ucallPage(uint64(UcallUnhandled), 0, 4, 14, 0, 0, 0))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, page []byte) {
		u, err := parseUcall(page, 0, testSites)
		if err != nil {
			_ = err.Error()
			return
		}
		if len(u.Args) > MaxUcallArgs {
			t.Fatalf("%d args", len(u.Args))
		}
		if u.Site == nil && binary.LittleEndian.Uint64(page[ucSite:]) != 0 {
			t.Fatalf("%s decoded without a site, but the page names one", u.Cmd)
		}
		_ = u.String()
		_ = (&AssertError{Site: u.Site, Args: u.Args}).Error()
	})
}

// TestForgedUcallSite is the regression test for a guest that names a site
// the host never issued: the run loop used to build an AssertError with a
// nil Site, and its Error method dereferenced it and panicked the harness.
func TestForgedUcallSite(t *testing.T) {
	cases := []struct {
		name    string
		cmd     UcallCmd
		site    int64
		nargs   int64
		wantErr string
	}{
		{"assert naming an unissued site", UcallAssert, 0x4242, 0, "site 16962 (0x4242)"},
		{"printf naming an unissued site", UcallPrintf, 7777, 1, "site 7777"},
		{"unknown command", 99, 1, 0, "command 99"},
		{"bad argument count", UcallSync, 1, 200, "argument count 200"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := New(emu.New(emu.Options{}), Config{Mode: CPL3})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			p := g.Program()
			p.Sync(1) // site 1 exists, so only the forged values are wrong
			p.Mov(asm.Q(asm.R15, ucNArgs), asm.Imm(c.nargs))
			p.Mov(asm.Q(asm.R15, ucSite), asm.Imm(c.site))
			p.Mov(asm.Q(asm.R15, ucCmd), asm.Imm(int64(c.cmd)))
			p.Out(asm.Imm(UcallPort), asm.AL)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = g.RunUntilDone(ctx, 0, nil)
			var ue *UcallError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want a UcallError naming %q", err, c.wantErr)
			}
		})
	}
}

// TestUcallOutEncoding keeps ResumeRIP's pattern what the assembler emits.
func TestUcallOutEncoding(t *testing.T) {
	a := asm.New(0)
	a.Out(asm.Imm(UcallPort), asm.AL)
	code, err := a.Assemble()
	if err != nil {
		t.Fatal(err)
	}
	if string(code) != string(ucallOut[:]) {
		t.Fatalf("out UcallPort, al assembles to % x, ResumeRIP looks for % x", code, ucallOut)
	}
}

// TestUcallsEitherOutRIPRule runs SYNC, PRINTF and DONE on the emu with RIP
// at the ucall's OUT and past it: the run loop must not care, and
// ResumeRIP must name the same place.
func TestUcallsEitherOutRIPRule(t *testing.T) {
	for _, rule := range []emu.OutRIPRule{emu.OutRIPAtInsn, emu.OutRIPPast} {
		t.Run(rule.String(), func(t *testing.T) {
			g, err := New(emu.New(emu.Options{OutRIP: rule}), Config{Mode: CPL3, Output: io.Discard})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			p := g.Program()
			p.Mov(asm.EBX, asm.Imm(1))
			p.Sync(1, asm.RBX)
			after := p.PC()
			p.Printf("rbx %d", asm.RBX)
			p.Inc(asm.EBX)
			p.Sync(2, asm.RBX)
			p.Done()
			if err := g.Load(p); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			for stage, want := range []uint64{1, 2} {
				ev, err := g.Run(ctx, 0)
				if err != nil || ev.Ucall == nil || ev.Ucall.Stage() != uint64(stage+1) || ev.Ucall.Args[1] != want {
					t.Fatalf("stage %d: %v, %v", stage+1, ev, err)
				}
				if stage == 0 {
					r, _ := g.VCPUs[0].Regs()
					if got := g.ResumeRIP(r.RIP); got != after {
						t.Fatalf("ResumeRIP(%#x) = %#x, want %#x (past the SYNC)", r.RIP, got, after)
					}
				}
			}
			if err := g.RunUntilDone(ctx, 0, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}
