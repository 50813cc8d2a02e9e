// Package interrupt catches SIGINT and SIGTERM as early as a Go program
// can: in the init of a package with no dependencies beyond the standard
// library's os/signal, which Go initialises before the heavier packages
// (Ginkgo, Gomega, the suites) whose inits take tens of milliseconds.
// Until a handler is installed, SIGINT kills the process outright, and a
// run killed that early would leave the previous run's reports in place
// without a word; caught, the signal makes kvmspec run mark its report
// directory "interrupted" and exit 130.
//
// Between the last look (Caught) before the specs start and the moment
// Ginkgo installs its own handler, a signal reaches only this package:
// HandOff, called once Ginkgo's handler is in place, sends it again so
// that Ginkgo sees it. Without it such a ^C was lost and the run went on
// to its end.
package interrupt

import (
	"os"
	"os/signal"
	"syscall"
)

var caught = make(chan os.Signal, 1)

func init() {
	signal.Notify(caught, os.Interrupt, syscall.SIGTERM)
}

// Caught returns the name of a signal that arrived and was not yet taken,
// or "" when none did. It does not wait.
func Caught() string {
	select {
	case s := <-caught:
		return s.String()
	default:
		return ""
	}
}

// HandOff stops catching and, if a signal arrived since the last Caught,
// raises it again for the handler installed since (Ginkgo's). Call it once
// that handler is in place.
func HandOff() {
	signal.Stop(caught)
	select {
	case s := <-caught:
		if sig, ok := s.(syscall.Signal); ok {
			syscall.Kill(os.Getpid(), sig)
		}
	default:
	}
}
