package host

import (
	"fmt"
	"math/bits"
	"strings"
)

// taintFlag is one bit of the kernel taint mask as
// Documentation/admin-guide/tainted-kernels.rst describes it.
type taintFlag struct {
	letter byte
	what   string
}

// taintFlags is indexed by bit number, in the kernel's order.
var taintFlags = [...]taintFlag{
	{'P', "proprietary module loaded"},
	{'F', "module force-loaded"},
	{'S', "kernel running on an out-of-specification system"},
	{'R', "module force-unloaded"},
	{'M', "machine check exception"},
	{'B', "bad page referenced or unexpected page flags"},
	{'U', "taint requested by user space"},
	{'D', "kernel died recently (OOPS or BUG)"},
	{'A', "ACPI table overridden"},
	{'W', "kernel issued a warning"},
	{'C', "staging driver loaded"},
	{'I', "platform firmware bug worked around"},
	{'O', "out-of-tree module loaded"},
	{'E', "unsigned module loaded"},
	{'L', "soft lockup occurred"},
	{'K', "kernel live patched"},
	{'X', "auxiliary taint (distribution-defined)"},
	{'T', "kernel built with struct randomization"},
	{'N', "in-kernel test run"},
	{'J', "fwctl userspace debug access"},
}

// TaintString returns the letters of the set taint bits in bit order, as the
// kernel prints them after "Tainted:" but without the placeholders for clear
// bits (so 1<<9 gives "W" and 0 gives ""). Bits the table does not know are
// written as their number in brackets, e.g. "[25]", so none is hidden.
func TaintString(mask uint64) string {
	var b strings.Builder
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i < len(taintFlags) {
			b.WriteByte(taintFlags[i].letter)
		} else {
			fmt.Fprintf(&b, "[%d]", i)
		}
	}
	return b.String()
}

// describeTaint spells each set bit out, for messages a person reads.
func describeTaint(mask uint64) string {
	var parts []string
	for mask != 0 {
		i := bits.TrailingZeros64(mask)
		mask &^= 1 << i
		if i < len(taintFlags) {
			parts = append(parts, fmt.Sprintf("%c: %s", taintFlags[i].letter, taintFlags[i].what))
		} else {
			parts = append(parts, fmt.Sprintf("bit %d: unknown", i))
		}
	}
	return strings.Join(parts, "; ")
}
