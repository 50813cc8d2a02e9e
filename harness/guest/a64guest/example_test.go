package a64guest_test

import (
	"context"
	"fmt"

	"github.com/kvmspec/kvmspec/harness/a64"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/guest/a64guest"
	"github.com/kvmspec/kvmspec/harness/hv"
)

// A spec on an arm64 backend: test code starts at EL1, drops to EL0,
// expects the fault of reading EL1 data there, reports its ESR, and the
// host compares it with what the walker predicts.
func Example() {
	var h hv.Hypervisor // the kvm backend on an arm64 host
	if h == nil {
		return
	}
	g, err := a64guest.New(h, a64guest.Config{Mode: a64guest.Mode{PABits: 40, VABits: 48, Granule: a64guest.Granule64K}})
	if err != nil {
		fmt.Println(err) // a64guest.ErrNotARM64 on backends without arm64 vCPUs
		return
	}
	defer g.Close()
	el1Data := g.UserBlock(0) - 0x10000
	p := g.Program()
	p.Mov(a64.X6, a64.Imm(int64(el1Data)))
	p.ToEL0()
	p.Probe(a64guest.ProbeRead, a64.X6, a64.X8)
	p.ToEL1()
	p.Sync(1, a64.X8)
	p.Done()
	if err := g.Load(p); err != nil {
		fmt.Println(err)
		return
	}
	err = g.RunUntilDone(context.Background(), 0, func(u *guest.Ucall) error {
		_, fault := g.Walker().Translate(el1Data, a64guest.Access{EL: 0})
		fmt.Printf("guest: %v; walker: %v\n", a64guest.Exception{ESR: u.Args[1]}, fault)
		return nil
	})
	if err != nil {
		fmt.Println(err)
	}
}
