package hvtest

import (
	"sync"

	"github.com/kvmspec/kvmspec/harness/hv"
)

// Recorder is a device for tests: it records every access in order, reads
// return ReadValue's bytes (little endian), and Fail makes the next
// accesses fail. Safe for concurrent use.
type Recorder struct {
	DevName   string
	ReadValue uint64

	mu       sync.Mutex
	accesses []hv.Access // Data copied
	fail     error
	resets   int
	closes   int
}

// Name implements hv.Device.
func (r *Recorder) Name() string {
	if r.DevName == "" {
		return "recorder"
	}
	return r.DevName
}

// Access implements hv.Device.
func (r *Recorder) Access(a *hv.Access) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if !a.Write {
		v := r.ReadValue
		for i := range a.Data {
			a.Data[i] = byte(v)
			v >>= 8
		}
	}
	c := *a
	c.Data = append([]byte(nil), a.Data...)
	r.accesses = append(r.accesses, c)
	return nil
}

// Reset implements hv.Device.
func (r *Recorder) Reset() error { r.mu.Lock(); r.resets++; r.mu.Unlock(); return nil }

// Close implements hv.Device.
func (r *Recorder) Close() error { r.mu.Lock(); r.closes++; r.mu.Unlock(); return nil }

// Fail makes later accesses return err (nil: succeed again).
func (r *Recorder) Fail(err error) { r.mu.Lock(); r.fail = err; r.mu.Unlock() }

// Accesses returns a copy of the accesses so far.
func (r *Recorder) Accesses() []hv.Access {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]hv.Access(nil), r.accesses...)
}

// Counts returns how many reads and writes reached the device.
func (r *Recorder) Counts() (reads, writes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.accesses {
		if a.Write {
			writes++
		} else {
			reads++
		}
	}
	return
}

// Lifecycle returns how often Reset and Close were called.
func (r *Recorder) Lifecycle() (resets, closes int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resets, r.closes
}
