package dirtylog

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/fixtures"
	"github.com/kvmspec/kvmspec/harness/guest"
	"github.com/kvmspec/kvmspec/harness/profile"
)

func TestPageSet(t *testing.T) {
	s := pagesOf(131, 0, 63, 64, 130)
	if s.count() != 4 || !s.has(64) || s.has(65) {
		t.Fatalf("set %v", s)
	}
	if got := s.String(); got != "{0 63-64 130} (4 pages)" {
		t.Fatalf("String = %q", got)
	}
	o := pagesOf(131, 63, 64, 7)
	if d := diff(o, s); d != "missing {0 130} (2 pages), unexpected {7} (1 pages)" {
		t.Fatalf("diff = %q", d)
	}
	if !s.union(o).equal(pagesOf(131, 0, 7, 63, 64, 130)) {
		t.Fatalf("union %v", s.union(o))
	}
	// A stray bit beyond the slot, as a wrong backend could set it, is
	// kept and shown.
	w := newPageSet(131)
	w.addWords([]uint64{0, 0, 1 << 10})
	if w.equal(newPageSet(131)) || w.list()[0] != 138 {
		t.Fatalf("stray bit lost: %v", w)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"4096": 4096, "64M": 64 << 20, "256MiB": 256 << 20, "1G": 1 << 30, "16k": 16 << 10, "0x1000": 4096} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "M", "12Q", "99999999999G"} {
		if _, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) accepted", in)
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"10": 10 * time.Millisecond, "250ms": 250 * time.Millisecond, "2s": 2 * time.Second} {
		got, err := parseDuration(in)
		if err != nil || got != want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5ms", "soon"} {
		if _, err := parseDuration(in); err == nil {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
}

// TestXorshift pins the generator to Marsaglia's xorshift64 (13, 7, 17):
// the guest code emits the same steps, so a change here must change both.
func TestXorshift(t *testing.T) {
	x := xorshift(1)
	want := []uint64{0x40822041, 0x100041060c011441, 0x9b1e842f6e862629}
	for i, w := range want {
		if got := x.next(); got != w {
			t.Fatalf("step %d: %#x, want %#x", i+1, got, w)
		}
	}
	if seedState(0) == 0 || seedState(1) == seedState(2) {
		t.Fatal("seedState gives zero or equal states")
	}
	m := newWriteModel(seedState(7), 1027)
	for k := uint64(1); k <= 100; k++ {
		if p := m.page(k); p >= 1027 {
			t.Fatalf("write %d to page %d of 1027", k, p)
		}
	}
	if k, ok := m.lastWrite(m.page(50), 60); !ok || k < 50 {
		t.Fatalf("lastWrite = %d, %v", k, ok)
	}
	if w := m.window(1, 10); w.count() > 10 || !w.has(m.page(3)) {
		t.Fatalf("window %v", w)
	}
}

// TestPVMProfileCoversCPL0Rings checks that the host profile keeps every
// dirty-ring spec with guest code at CPL0 from running on kvm-pvm (it
// taints the host kernel), and nothing else of this area.
func TestPVMProfileCoversCPL0Rings(t *testing.T) {
	profiles, err := profile.Load(fixtures.Hosts, "hosts")
	if err != nil {
		t.Fatal(err)
	}
	pvm := profile.Find(profiles, "pvm")
	if pvm == nil {
		t.Fatal("no pvm profile")
	}
	names := []string{textConcurrent, textSoftLimit, textTwice, textPerVCPU, textClearExactly, textInterrupted}
	for _, c := range exactCases {
		names = append(names, textExactSet+" / "+c.name)
	}
	for _, mode := range logModes {
		for _, cpl := range []guest.Mode{guest.CPL0, guest.CPL3} {
			for _, n := range names {
				id := fmt.Sprintf("dirtylog/%s / %s [%s]", mode, n, cpl)
				d := pvm.Lookup("kvm", id)
				harmful := mode.ring && cpl == guest.CPL0
				// The interrupted-reset spec exists in the plain ring mode only.
				known := mode == modeDirtyRing && cpl == guest.CPL3 && n == textInterrupted
				switch {
				case harmful && (d == nil || d.Runs()):
					t.Errorf("%s: runs on kvm-pvm (deviation %v)", id, d)
				case known && (d == nil || !d.Runs()):
					t.Errorf("%s: not a known deviation that runs (%v)", id, d)
				case !harmful && !known && d != nil:
					t.Errorf("%s: hit by deviation %s", id, d.ID)
				}
			}
		}
	}
}

// listModel is the write model the simple way, every write's state kept:
// the reference writeModel's streaming answers are checked against.
type listModel struct {
	pages  uint64
	states []uint64
}

func (l *listModel) state(k uint64) uint64 {
	for uint64(len(l.states)) <= k {
		x := xorshift(l.states[len(l.states)-1])
		l.states = append(l.states, x.next())
	}
	return l.states[k]
}

// TestWriteModelStream asks the streaming model what the concurrent check
// asks (in its order, and out of it) and compares with the list.
func TestWriteModelStream(t *testing.T) {
	const pages = 67
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 50; round++ {
		seed := seedState(int64(round))
		m := newWriteModel(seed, pages)
		ref := &listModel{pages: pages, states: []uint64{seed}}
		var k, mark uint64
		for q := 0; q < 200; q++ {
			// Mostly forward, as the check goes; now and then back.
			switch op := rng.IntN(10); {
			case op < 7:
				k += uint64(rng.IntN(40))
			case k > 0:
				k -= uint64(rng.IntN(int(min(k, 30)) + 1))
			}
			if got, want := m.state(k), ref.state(k); got != want {
				t.Fatalf("round %d: state(%d) = %#x, want %#x", round, k, got, want)
			}
			if got, want := m.page(k+1), ref.state(k+1)%pages; got != want {
				t.Fatalf("round %d: page(%d) = %d, want %d", round, k+1, got, want)
			}
			if rng.IntN(3) == 0 && k > mark {
				from := mark + 1
				if rng.IntN(4) == 0 {
					from = uint64(rng.IntN(int(k))) + 1 // not the next window
				}
				want := newPageSet(pages)
				for i := from; i <= k; i++ {
					want.add(ref.state(i) % pages)
				}
				if got := m.window(from, k); !got.equal(want) {
					t.Fatalf("round %d: window(%d, %d) = %v, want %v", round, from, k, got, want)
				}
				if from == mark+1 {
					mark = k
				}
			}
			p := uint64(rng.IntN(pages))
			var want uint64
			for i := uint64(1); i <= k; i++ {
				if ref.state(i)%pages == p {
					want = i
				}
			}
			if got, ok := m.lastWrite(p, k); got != want || ok != (want != 0) {
				t.Fatalf("round %d: lastWrite(%d, %d) = %d, %v; want %d", round, p, k, got, ok, want)
			}
		}
	}
}
