package emu

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/kvmspec/kvmspec/harness/hv"
)

const portCheckpoint = 0xf1 // the distinct-code program reports progress here

// distinctCode returns n bytes of straight-line code (n a multiple of
// chunk) made of short instructions, 3 bytes each on average, with an
// "out portCheckpoint, al" ending every chunk and "out portDone, al" at
// the end. It counts executed INCs in ECX: 1 per 12 code bytes.
func distinctCode(n, chunk int) (code []byte, incs uint32) {
	pattern := []byte{
		0xff, 0xc1, // inc ecx
		0x01, 0xc8, // add eax, ecx
		0x8d, 0x14, 0x08, // lea edx, [rax+rcx]
		0x35, 0x78, 0x56, 0x34, 0x12, // xor eax, 0x12345678
	}
	code = make([]byte, 0, n)
	for len(code) < n {
		end := len(code) + chunk - 2
		for len(code)+len(pattern) <= end {
			code = append(code, pattern...)
			incs++
		}
		for len(code) < end {
			code = append(code, 0x90) // nop
		}
		code = append(code, 0xe6, portCheckpoint)
	}
	code[len(code)-1] = portDone
	return code, incs
}

type codeRun struct {
	liveHeap  uint64 // largest live heap (after GC) at a checkpoint, over the start
	cacheMax  uint64 // largest decode_cache_bytes at a checkpoint
	evictions uint64
}

// runDistinctCode runs size bytes of distinct code on a vCPU with the
// given decode-cache budget, measuring the heap at each 1 MiB checkpoint.
func runDistinctCode(t *testing.T, size, budget int) codeRun {
	code, incs := distinctCode(size, 1<<20)
	g := newTestGuest(t, New(Options{DecodeCacheBytes: budget}), guestOpt{memSize: codeGPA + uint64(size) + 8<<20}, code)
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out codeRun
	for {
		e, err := g.vcpu.Run(ctx)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		io, ok := e.(*hv.IOExit)
		if !ok || (io.Port != portCheckpoint && io.Port != portDone) {
			r, _ := g.vcpu.Regs()
			t.Fatalf("exit %v, want a checkpoint; regs %v", e, r)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base && ms.HeapAlloc-base > out.liveHeap {
			out.liveHeap = ms.HeapAlloc - base
		}
		st, _ := g.vcpu.Stats()
		cb, _ := st.Get("decode_cache_bytes")
		out.cacheMax = max(out.cacheMax, cb)
		out.evictions, _ = st.Get("code_evictions")
		if io.Port == portDone {
			break
		}
	}
	r, err := g.vcpu.Regs()
	if err != nil {
		t.Fatal(err)
	}
	if uint32(r.RCX) != incs {
		t.Fatalf("ecx %d after the run, want %d", uint32(r.RCX), incs)
	}
	return out
}

// TestDecodeCacheBounded executes 16 MiB of distinct code with a 4 MiB
// decode-cache budget: the cache, and the live heap with it, stay within
// the budget (plus the block decoded last, which is evicted at the next
// block boundary), and the program runs to its exact end. A control run
// of 2 MiB of the same code with an unlimited budget shows the cache would
// otherwise grow far past it.
func TestDecodeCacheBounded(t *testing.T) {
	const budget = 4 << 20
	slack := uint64(codePageCost + blockTabCost + blockCost + maxBlock*instCost)
	b := runDistinctCode(t, 16<<20, budget)
	t.Logf("16 MiB of code, budget %d: peak live heap +%d bytes, cache peak %d bytes, %d page evictions",
		budget, b.liveHeap, b.cacheMax, b.evictions)
	if b.cacheMax > budget+slack {
		t.Errorf("decode cache reached %d bytes, budget %d", b.cacheMax, budget)
	}
	// The heap holds the cache and the map of its pages, plus what the
	// runtime and the test itself allocate: allow a quarter over.
	if b.liveHeap > budget+budget/4+slack {
		t.Errorf("live heap grew by %d bytes, budget %d", b.liveHeap, budget)
	}
	if b.evictions == 0 {
		t.Error("no code page was evicted")
	}
	u := runDistinctCode(t, 2<<20, 1<<30)
	t.Logf("2 MiB of code, no budget: peak live heap +%d bytes, cache peak %d bytes", u.liveHeap, u.cacheMax)
	if u.cacheMax < 4*budget || u.liveHeap < 4*budget {
		t.Errorf("unbounded control run used only %d bytes of cache (%d heap): the bound above proves nothing", u.cacheMax, u.liveHeap)
	}
}
