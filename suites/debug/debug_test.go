package debug

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/profile"
)

// specIDs are the IDs of every case in both modes, as reports build them.
func specIDs() []string {
	var ids []string
	for _, g := range []struct {
		name  string
		cases []tcase
	}{{groupHost, hostCases()}, {groupGuest, guestCases()}, {groupInterplay, interplayCases()}} {
		for _, mode := range []guest.Mode{guest.CPL3, guest.CPL0} {
			for _, c := range g.cases {
				if c.cpl0Only && mode != guest.CPL0 {
					continue
				}
				ids = append(ids, fmt.Sprintf("debug/%s / %s [%s]", g.name, c.name, mode))
			}
		}
	}
	for _, c := range badInputCases() {
		ids = append(ids, "debug/"+groupBadInput+" / "+c.name)
	}
	return ids
}

// TestPVMProfile checks the kvm-pvm host profile against the cases: every
// debug pattern it declares matches a case (a renamed case must not leave
// a deviation that matches nothing), and what kvm-host.md measured to work
// there is not declared, so a regression there shows as a failure.
func TestPVMProfile(t *testing.T) {
	profiles, err := profile.Load(fixtures.Hosts, "hosts")
	if err != nil {
		t.Fatal(err)
	}
	pvm := profile.Find(profiles, "pvm")
	if pvm == nil {
		t.Fatal("no pvm profile")
	}
	ids := specIDs()
	if n := len(ids); n < 80 {
		t.Errorf("%d cases over both modes, want at least 40 per mode", n)
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("duplicate spec ID %q", id)
		}
		seen[id] = true
	}
	for _, d := range pvm.Deviations {
		for _, pat := range d.Specs {
			if !strings.HasPrefix(pat, "debug/") {
				continue
			}
			one := profile.Deviation{Specs: []string{pat}}
			n := 0
			for _, id := range ids {
				if one.Matches(id) {
					n++
				}
			}
			if n == 0 {
				t.Errorf("deviation %s: pattern %q matches no debug case", d.ID, pat)
			}
		}
	}
	works := []string{
		"debug/host-owned / single-step reports the RIP of every instruction [cpl0]",
		"debug/host-owned / resume by disarm, step, re-arm [cpl0]",
		"debug/guest-owned / execute breakpoint DR0 [cpl0]",
		"debug/guest-owned / TF single-step reports every instruction [cpl0]",
		"debug/guest-owned / TF single-step reports every instruction [cpl3]",
		"debug/guest-owned / int3 in a loop [cpl3]",
		"debug/bad input / unknown guest debug flags are EINVAL and change nothing",
	}
	fails := []string{
		"debug/host-owned / software breakpoint [cpl0]",
		"debug/host-owned / execute breakpoint DR3 [cpl3]",
		"debug/host-owned / write watchpoint DR2 len 8 [cpl0]",
		"debug/host-owned / resume with RF runs the breakpoint's instruction once [cpl0]",
		"debug/guest-owned / write watchpoint DR1 [cpl3]",
		"debug/guest-owned / execute breakpoint DR0 with write watchpoint DR3 [cpl0]",
		"debug/guest-owned / int3 in a loop [cpl0]",
		"debug/interplay / host watchpoint on a dirty-logged page [cpl3]",
		"debug/interplay / guest read/write watchpoint on a demand-paged page [cpl0]",
	}
	for _, id := range works {
		if !seen[id] {
			t.Errorf("no case %q", id)
		}
		if d := pvm.Lookup("kvm", id); d != nil {
			t.Errorf("%s: works on kvm-pvm but is declared by %s", id, d.ID)
		}
	}
	for _, id := range fails {
		if !seen[id] {
			t.Errorf("no case %q", id)
		}
		if d := pvm.Lookup("kvm", id); d == nil || !d.Runs() {
			t.Errorf("%s: measured to fail on kvm-pvm, not a deviation that runs (%v)", id, d)
		}
	}
}

func TestDR7Encoding(t *testing.T) {
	cases := []struct {
		i     int
		rw    uint64
		n     int
		want  uint64
		label string
	}{
		// debug_regs.c: write watchpoint, 4 bytes, on DR0 is 0x000d0000 << 4i.
		{0, rwWrite, 4, 0x000d0000, "DR0 write 4"},
		{3, rwWrite, 4, 0xd0000000, "DR3 write 4"},
		{1, rwRW, 8, 0x00b00000, "DR1 rw 8"},
		{2, rwExec, 1, 0, "DR2 exec"},
		{2, rwWrite, 2, 0x05000000, "DR2 write 2"},
	}
	for _, c := range cases {
		if got := dr7Cond(c.i, c.rw, c.n); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.label, got, c.want)
		}
	}
	if dr7Enable(3, true) != 0x80 || dr7Enable(1, false) != 0x4 {
		t.Error("enable bits")
	}
}
