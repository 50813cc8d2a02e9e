package guest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/asm"
	"github.com/kvmspec/kvmspec/harness/emu"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/hv"
	"github.com/kvmspec/kvmspec/harness/kvm"
)

// backends returns every backend usable here; tests run on each.
func backends(t *testing.T) []hv.Hypervisor {
	t.Helper()
	var out []hv.Hypervisor
	if h, err := kvm.Open(kvm.Options{}); err == nil {
		t.Cleanup(func() { h.Close() })
		out = append(out, h)
	} else {
		t.Logf("kvm: %v", err)
	}
	return append(out, emu.New(emu.Options{}))
}

func forEach(t *testing.T, f func(t *testing.T, h hv.Hypervisor, mode guest.Mode)) {
	for _, h := range backends(t) {
		for _, mode := range []guest.Mode{guest.CPL3, guest.CPL0} {
			t.Run(h.Name()+"/"+mode.String(), func(t *testing.T) { f(t, h, mode) })
		}
	}
}

func newGuest(t *testing.T, h hv.Hypervisor, cfg guest.Config) *guest.Guest {
	t.Helper()
	g, err := guest.New(h, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSyncAndDone(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		p := g.Program()
		p.Mov(asm.RAX, asm.Imm(40))
		p.Add(asm.RAX, asm.Imm(2))
		p.Sync(1, asm.RAX, asm.RDI)
		p.AssertEq(asm.RAX, asm.Imm(42), "sum")
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		var got []uint64
		err := g.RunUntilDone(ctx(t), 0, func(u *guest.Ucall) error {
			got = u.Args
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 3 || got[0] != 1 || got[1] != 42 || got[2] != 0 {
			t.Fatalf("sync args %#x, want [1 42 0]", got)
		}
	})
}

func TestAssertReportsSource(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		p := g.Program()
		p.Mov(asm.RAX, asm.Imm(7))
		p.AssertEq(asm.RAX, asm.Imm(8), "seven is not eight") // this line is reported
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		err := g.RunUntilDone(ctx(t), 0, nil)
		var ae *guest.AssertError
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v, want an AssertError", err)
		}
		if !strings.Contains(err.Error(), "guest_test.go:") || !strings.Contains(err.Error(), "seven is not eight") ||
			!strings.Contains(err.Error(), "0x7") {
			t.Fatalf("assert error %q lacks file:line, message or values", err)
		}
	})
}

func TestExceptions(t *testing.T) {
	forEach(t, func(t *testing.T, h hv.Hypervisor, mode guest.Mode) {
		g := newGuest(t, h, guest.Config{Mode: mode})
		p := g.Program()
		fix := p.NewLabel()
		p.ExpectException(fix)
		p.Mov(asm.RAX, asm.Imm(0x10)) // page 0x10 is... unmapped page 0
		p.Mov(asm.RBX, asm.Q(asm.RAX, 0))
		p.Bind(fix)
		p.Mov(asm.RAX, asm.Q(asm.R15, guest.ExcVector))
		p.Sync(1, asm.RAX)
		p.Ud2()
		p.Done()
		if err := g.Load(p); err != nil {
			t.Fatal(err)
		}
		ev, err := g.Run(ctx(t), 0)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Ucall == nil || ev.Ucall.Stage() != 1 || ev.Ucall.Args[1] != 14 {
			t.Fatalf("event %+v, want sync with vector 14", ev.Ucall)
		}
		x, n, err := g.LastException(0)
		if err != nil {
			t.Fatal(err)
		}
		wantErr := uint64(0) // not present, read, supervisor
		if mode == guest.CPL3 {
			wantErr = 4
		}
		if n != 1 || x.Vector != 14 || x.CR2 != 0x10 || x.ErrorCode != wantErr {
			t.Fatalf("exception %v (count %d), want #PF cr2 0x10 error %#x", x, n, wantErr)
		}
		_, err = g.Run(ctx(t), 0)
		var xe *guest.ExceptionError
		if !errors.As(err, &xe) || xe.Vector != 6 || !strings.Contains(xe.Source, "guest_test.go") {
			t.Fatalf("err = %v, want unexpected #UD built in guest_test.go", err)
		}
	})
}
