package a64guest

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/a64"
)

// modelGIC is a GICv3 helper over a model guest (no vGIC: the code is
// assembled and loaded, not run) with the IRQ handler installed.
func modelGIC(t *testing.T) (*Guest, *GICv3) {
	t.Helper()
	g := modelGuest(t, Config{})
	for _, v := range []int{VecIRQEL1t, VecIRQLower64} {
		must(t, g.Handle(Handler{Vector: v, Body: func(p *Program, _ Frame) {
			irqHandler(p, func(p *Program) { p.Sync(9, a64.X19) })
		}}))
	}
	return g, &GICv3{Dist: 0x0800_0000, Redist: 0x080a_0000, g: g}
}

// TestGICv3Layout keeps the IRQ log inside the user block's free space:
// after the handler counts, below the test scratch area.
func TestGICv3Layout(t *testing.T) {
	if IRQLog < HandlerCounts+4*NumVectors || IRQEntries+8*IRQLogEntries > UserScratch || IRQLogEntries < 32 {
		t.Errorf("IRQ log [%#x, %#x) with %d entries: outside [%#x, %#x) or too small",
			IRQLog, IRQEntries+8*IRQLogEntries, IRQLogEntries, HandlerCounts+4*NumVectors, UserScratch)
	}
}

// TestGICv3Program assembles the bring-up, enabling every kind of
// interrupt, the wait and the handler; INTIDs that are no PPI or SPI are
// errors the load reports.
func TestGICv3Program(t *testing.T) {
	g, c := modelGIC(t)
	p := g.Program()
	c.Init(p)
	c.Enable(p, 23, Level)
	c.Enable(p, FirstSPI, Edge)
	c.Enable(p, 1019, Level)
	c.Disable(p, FirstSPI)
	p.MsrDAIFClr(2)
	c.WaitIRQs(p, a64.X2, 1, 10*time.Millisecond)
	SpinFor(p, time.Millisecond)
	p.Done()
	must(t, g.load(p))
	for _, bad := range []struct {
		name string
		emit func(p *Program)
	}{
		{"enable SGI 5", func(p *Program) { c.Enable(p, 5, Edge) }},
		{"enable INTID 1020", func(p *Program) { c.Enable(p, 1020, Level) }},
		{"disable PPI 20", func(p *Program) { c.Disable(p, 20) }},
	} {
		g, c2 := modelGIC(t)
		c = c2
		p := g.Program()
		bad.emit(p)
		p.Done()
		if err := g.load(p); err == nil || !strings.Contains(err.Error(), "INTID") {
			t.Errorf("%s: load error %v, want one naming the INTID", bad.name, err)
		}
	}
}

// TestGICv3IRQs reads the log as the handler leaves it: the INTIDs in
// order, the count, the spurious reads; a count beyond the list gives the
// list.
func TestGICv3IRQs(t *testing.T) {
	g, c := modelGIC(t)
	put := func(off int, v uint64) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], v)
		must(t, g.VM.WriteGPA(g.UserBlock(0)+uint64(off), b[:]))
	}
	put(IRQCount, 3)
	put(IRQSpurious, 1)
	for i, id := range []uint64{23, 40, 23} {
		put(IRQEntries+8*i, id)
	}
	ids, n, sp, err := c.IRQs(0)
	must(t, err)
	if len(ids) != 3 || ids[0] != 23 || ids[1] != 40 || ids[2] != 23 || n != 3 || sp != 1 {
		t.Errorf("IRQs = %v, %d, %d; want [23 40 23], 3, 1", ids, n, sp)
	}
	put(IRQCount, IRQLogEntries+5)
	ids, n, _, err = c.IRQs(0)
	must(t, err)
	if len(ids) != IRQLogEntries || n != IRQLogEntries+5 {
		t.Errorf("a full log: %d INTIDs, count %d; want %d, %d", len(ids), n, IRQLogEntries, IRQLogEntries+5)
	}
}
