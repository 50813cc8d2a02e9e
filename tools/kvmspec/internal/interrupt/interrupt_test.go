package interrupt

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// A signal that arrives while only this package listens (after the last
// Caught, before Ginkgo's handler) reaches the handler installed later
// once HandOff runs, exactly once; with nothing caught HandOff raises
// nothing.
func TestHandOff(t *testing.T) {
	signal.Notify(caught, os.Interrupt, syscall.SIGTERM) // as init did (a HandOff of an earlier -count stopped it)
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(caught) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if len(caught) == 0 {
		t.Fatal("SIGTERM not caught")
	}

	later := make(chan os.Signal, 4) // stands for Ginkgo's handler
	signal.Notify(later, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(later)
	HandOff()
	select {
	case s := <-later:
		if s != syscall.SIGTERM {
			t.Fatalf("handed off %v, want SIGTERM", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caught signal was not handed off")
	}
	if s := Caught(); s != "" {
		t.Fatalf("Caught after HandOff = %q", s)
	}
	HandOff() // nothing caught: nothing raised
	select {
	case s := <-later:
		t.Fatalf("a second HandOff raised %v", s)
	case <-time.After(100 * time.Millisecond):
	}
}
