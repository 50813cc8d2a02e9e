package kvm

import (
	"sync"
	"testing"
)

// The kick writes immediate_exit from another thread while the vCPU
// thread writes request_interrupt_window, the byte next to it: neither
// store may undo the other.
func TestSetRunByteKeepsNeighbours(t *testing.T) {
	run := make([]byte, 64)
	run[2], run[3] = 0x5a, 0xa5
	var wg sync.WaitGroup
	for _, off := range []int{runRequestIRQWindow, runImmediateExit} {
		wg.Add(1)
		go func(off int) {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				setRunByte(run, off, uint8(i&1))
			}
			setRunByte(run, off, 1)
		}(off)
	}
	wg.Wait()
	if run[runRequestIRQWindow] != 1 || run[runImmediateExit] != 1 || run[2] != 0x5a || run[3] != 0xa5 {
		t.Fatalf("first word % x, want 01 01 5a a5", run[:4])
	}
	setImmediateExit(run, 0)
	if run[runImmediateExit] != 0 || run[runRequestIRQWindow] != 1 {
		t.Fatalf("setImmediateExit(0) left % x", run[:4])
	}
}
