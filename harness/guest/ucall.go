package guest

import (
	"fmt"
	"strings"

	"github.com/kvmspec/kvmspec/harness/guest/desc"
)

// UcallCmd is the kind of a guest-to-host call.
type UcallCmd uint64

// Ucall commands, as in the kernel selftests' ucall ABI.
const (
	UcallNone UcallCmd = iota
	UcallSync
	UcallAssert
	UcallPrintf
	UcallDone
	UcallUnhandled
)

func (c UcallCmd) String() string {
	switch c {
	case UcallSync:
		return "SYNC"
	case UcallAssert:
		return "ASSERT"
	case UcallPrintf:
		return "PRINTF"
	case UcallDone:
		return "DONE"
	case UcallUnhandled:
		return "UNHANDLED"
	}
	return fmt.Sprintf("ucall(%d)", uint64(c))
}

// argRange is how many arguments cmd takes; known is false for a value
// that is not a command of the ABI. UNHANDLED carries the x86 exception
// report (vector, error code, RIP, CR2); ParseUcallRecord lets another
// architecture's runtime say how many values its report has.
func (c UcallCmd) argRange() (lo, hi uint64, known bool) {
	switch c {
	case UcallSync:
		return 1, MaxUcallArgs, true // the stage, then values
	case UcallAssert, UcallPrintf:
		return 0, MaxUcallArgs, true
	case UcallDone:
		return 0, 0, true
	case UcallUnhandled:
		return 4, 4, true // vector, error code, RIP, CR2
	}
	return 0, 0, false
}

// UcallError is a ucall the host refuses: the guest wrote a value into its
// ucall page that the ABI or the host's record of issued sites does not
// allow. The guest is untrusted, so this is a spec failure, never a panic.
type UcallError struct {
	VCPU   int
	Cmd    UcallCmd
	Field  string // "command", "site" or "argument count"
	Value  uint64
	Reason string
}

func (e *UcallError) Error() string {
	return fmt.Sprintf("vcpu %d: malformed ucall %s: %s %d (%#x): %s", e.VCPU, e.Cmd, e.Field, e.Value, e.Value, e.Reason)
}

// Site is where guest code that makes a ucall was built: the Go file:line
// of the Program call, and its static message or format.
type Site struct {
	ID     uint64
	Cmd    UcallCmd // the command the site was issued for
	File   string
	Line   int
	Msg    string
	Format string
}

func (s *Site) String() string {
	if s == nil {
		return "unknown site"
	}
	return fmt.Sprintf("%s:%d", s.File, s.Line)
}

// Ucall is one call from the guest.
type Ucall struct {
	VCPU int
	Cmd  UcallCmd
	Args []uint64
	Site *Site
}

// Stage is the first argument of a SYNC.
func (u *Ucall) Stage() uint64 {
	if len(u.Args) == 0 {
		return 0
	}
	return u.Args[0]
}

func (u *Ucall) String() string {
	return fmt.Sprintf("vcpu %d %s %#x at %s", u.VCPU, u.Cmd, u.Args, u.Site)
}

// AssertError is a failed guest ASSERT: where the guest code was built,
// the message, and the values the guest passed.
type AssertError struct {
	VCPU int
	Site *Site
	Args []uint64
}

func (e *AssertError) Error() string {
	var b strings.Builder
	msg := "(no message)"
	if e.Site != nil {
		msg = e.Site.Msg
	}
	fmt.Fprintf(&b, "guest assertion failed at %s: %s", e.Site, msg)
	if len(e.Args) > 0 {
		fmt.Fprintf(&b, " (values:")
		for _, a := range e.Args {
			fmt.Fprintf(&b, " %#x", a)
		}
		b.WriteString(")")
	}
	fmt.Fprintf(&b, " [vcpu %d]", e.VCPU)
	return b.String()
}

// VectorName returns "#PF" for 14 and so on.
func VectorName(v uint64) string {
	if v >= desc.IDTVectors {
		return fmt.Sprintf("vector %d", v)
	}
	return desc.VectorName(int(v))
}

// Exception is an exception the guest IDT caught.
type Exception struct {
	Vector    uint64
	ErrorCode uint64
	RIP       uint64
	CR2       uint64
}

func (x Exception) String() string {
	s := fmt.Sprintf("%s (%d) at rip %#x, error code %#x", VectorName(x.Vector), x.Vector, x.RIP, x.ErrorCode)
	if x.Vector == desc.VectorPF {
		s += fmt.Sprintf(", cr2 %#x", x.CR2)
	}
	return s
}

// ExceptionError is an exception the guest did not expect.
type ExceptionError struct {
	VCPU int
	Exception
	Source string // Go file:line of the instruction at RIP, when known
}

func (e *ExceptionError) Error() string {
	s := fmt.Sprintf("unexpected guest exception %s [vcpu %d]", e.Exception, e.VCPU)
	if e.Source != "" {
		s += " built at " + e.Source
	}
	return s
}

// UnexpectedExitError is an exit the run loop was not told to expect.
type UnexpectedExitError struct {
	VCPU   int
	Exit   string
	Regs   string
	Source string
}

func (e *UnexpectedExitError) Error() string {
	s := fmt.Sprintf("unexpected exit on vcpu %d: %s", e.VCPU, e.Exit)
	if e.Source != "" {
		s += " (instruction built at " + e.Source + ")"
	}
	return s + "; registers: " + e.Regs
}

// TimeoutError says the guest was still running when the context ended.
type TimeoutError struct {
	VCPU   int
	RIP    uint64
	Source string
	Err    error
}

func (e *TimeoutError) Error() string {
	s := fmt.Sprintf("guest timed out on vcpu %d at rip %#x", e.VCPU, e.RIP)
	if e.Source != "" {
		s += " (instruction built at " + e.Source + ")"
	}
	return s + ": " + e.Err.Error()
}

func (e *TimeoutError) Unwrap() error { return e.Err }

// ResumeRIP is where a vCPU goes on from a ucall exit whose registers
// say rip: past the ucall's OUT. KVM hosts differ in where RIP stands at
// a port-output exit (at the OUT until the next run on VMX and SVM, and
// on the emu by default; already past it on kvm_pvm; see
// emu.OutRIPRule), so code that compares RIP at a ucall compares this.
//
// rip is past the OUT when the OUT's bytes end at rip, and at it when
// they start there; past is checked first, so stale bytes of an older,
// longer program after the code cannot mislead it. A ucall sets its
// command with a MOV right before the OUT, so no OUT ends where a ucall's
// OUT starts. Any other rip, and every rip of an MMIO-ucall guest (an
// MMIO write exits past the instruction), is returned as it is.
func (g *Guest) ResumeRIP(rip uint64) uint64 {
	if g.cfg.UcallMMIO {
		return rip
	}
	n := uint64(len(ucallOut))
	if rip >= n {
		if b, err := g.Bytes(rip-n, int(n)); err == nil && string(b) == string(ucallOut[:]) {
			return rip
		}
	}
	if b, err := g.Bytes(rip, int(n)); err == nil && string(b) == string(ucallOut[:]) {
		return rip + n
	}
	return rip
}

// ucallOut is the encoding of a PIO ucall's last instruction,
// "out UcallPort, al" (TestUcallOutEncoding checks it).
var ucallOut = [2]byte{0xe6, UcallPort}
