package dirtylog_test

import (
	"flag"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/reports"
	"github.com/kvmspec/kvmspec/suites"
	"github.com/kvmspec/kvmspec/suites/dirtylog"
	"github.com/onsi/ginkgo/v2/types"
)

var heapTestTime = flag.Duration("dirtylog.heap-time", 4*time.Second, "how long TestConcurrentHeapBounded lets the guest write")

// heapSampler records the live heap every few milliseconds.
type heapSampler struct {
	mu      sync.Mutex
	samples []heapSample
	stop    chan struct{}
	done    chan struct{}
}

type heapSample struct {
	at    time.Time
	bytes uint64
}

func sampleHeap(every time.Duration) *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			metrics.Read(s)
			h.mu.Lock()
			h.samples = append(h.samples, heapSample{time.Now(), s[0].Value.Uint64()})
			h.mu.Unlock()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() []heapSample {
	close(h.stop)
	<-h.done
	return h.samples
}

// peak is the largest sample in [from, to).
func peak(s []heapSample, from, to time.Time) uint64 {
	var p uint64
	for _, x := range s {
		if !x.at.Before(from) && x.at.Before(to) {
			p = max(p, x.bytes)
		}
	}
	return p
}

var guestWrites = regexp.MustCompile(`guest writes (\d+)`)

// TestConcurrentHeapBounded runs the concurrent check (bitmap mode, CPL3)
// on the emu for seconds and samples the live heap: once the check is
// under way its peak must not grow with the guest's writes. Before the
// write model was a stream it kept 8 bytes per guest write, about
// 10 MB/s of heap; the bound here is far below what that grew in the run.
//
// It runs the spec through suites.Run: Ginkgo allows one suite per
// process, and no other test of this package starts one.
func TestConcurrentHeapBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the guest for seconds")
	}
	if f := flag.Lookup("test.count"); f != nil && f.Value.String() != "1" {
		t.Skip("Ginkgo runs one suite per process, and refuses go test -count > 1")
	}
	const iterations = 20
	interval := *heapTestTime / iterations
	runtime.GC()
	h := sampleHeap(2 * time.Millisecond)
	started := time.Now()
	run, err := suites.Run(&quietT{}, suites.Options{
		Backend: "emu", Profile: "none", Seed: 16, LabelFilter: "dirtylog",
		Focus:    []string{`dirty-log concurrent writer and harvester \[cpl3\]`},
		Params:   map[string]string{dirtylog.ParamIterations: strconv.Itoa(iterations), dirtylog.ParamInterval: interval.String()},
		Reporter: &types.ReporterConfig{SilenceSkips: true},
	})
	finished := time.Now()
	samples := h.end()
	if err != nil {
		t.Fatal(err)
	}
	var c *reports.Case
	for i := range run.Cases {
		if run.Cases[i].State != reports.StateSkipped {
			if c != nil {
				t.Fatalf("ran %s and %s, want the one spec", c.ID, run.Cases[i].ID)
			}
			c = &run.Cases[i]
		}
	}
	if c == nil || c.State != reports.StatePassed {
		t.Fatalf("spec %+v, want one that passed", c)
	}
	var writes uint64
	for _, e := range c.Entries {
		if m := guestWrites.FindStringSubmatch(e.Value); m != nil && e.Name == "totals" {
			writes, _ = strconv.ParseUint(m[1], 10, 64)
		}
	}
	// The first quarter holds setup (guest, slot, model); after it the
	// check only repeats itself.
	quarter := started.Add(finished.Sub(started) / 4)
	early, late := peak(samples, started, quarter), peak(samples, quarter, finished)
	growth := int64(late) - int64(early)
	t.Logf("%s: %d guest writes in %v; peak heap %.1f MiB in the first quarter, %.1f MiB after (%+.1f MiB); a list of writes would hold %.1f MiB",
		c.ID, writes, finished.Sub(started).Round(time.Millisecond), mib(early), mib(late), float64(growth)/(1<<20), mib(8*writes))
	if writes < 1<<20 {
		t.Fatalf("only %d guest writes: too few to tell a bound from growth", writes)
	}
	const bound = 8 << 20
	if growth > bound {
		t.Fatalf("peak heap grew by %.1f MiB after the first quarter of the run (bound %d MiB)", float64(growth)/(1<<20), bound>>20)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

type quietT struct{}

func (*quietT) Fail() {}
