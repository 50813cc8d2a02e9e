package desc

import "fmt"

// Exception vectors (SDM Vol. 3A, table 6-1).
const (
	VectorDE  = 0 // divide error
	VectorDB  = 1 // debug
	VectorNMI = 2
	VectorBP  = 3  // breakpoint (int3)
	VectorOF  = 4  // overflow (into)
	VectorBR  = 5  // bound range
	VectorUD  = 6  // invalid opcode
	VectorNM  = 7  // device not available
	VectorDF  = 8  // double fault
	VectorTS  = 10 // invalid TSS
	VectorNP  = 11 // segment not present
	VectorSS  = 12 // stack fault
	VectorGP  = 13 // general protection
	VectorPF  = 14 // page fault
	VectorMF  = 16 // x87 floating point
	VectorAC  = 17 // alignment check
	VectorMC  = 18 // machine check
	VectorXM  = 19 // SIMD floating point
	VectorVE  = 20 // virtualization exception
	VectorCP  = 21 // control protection
	VectorHV  = 28 // hypervisor injection (AMD)
	VectorVC  = 29 // VMM communication (AMD SEV-ES)
	VectorSX  = 30 // security exception (AMD)
	// FirstExternalVector is the first vector that is not an exception.
	FirstExternalVector = 32
)

// HasErrorCode reports whether the CPU pushes an error code when it
// delivers exception vector v (never for an external interrupt or int n
// to a vector above 31).
func HasErrorCode(v int) bool {
	switch v {
	case VectorDF, VectorTS, VectorNP, VectorSS, VectorGP, VectorPF, VectorAC, VectorCP, VectorVC, VectorSX:
		return true
	}
	return false
}

var vectorNames = map[int]string{VectorDE: "#DE", VectorDB: "#DB", VectorNMI: "NMI", VectorBP: "#BP",
	VectorOF: "#OF", VectorBR: "#BR", VectorUD: "#UD", VectorNM: "#NM", VectorDF: "#DF", VectorTS: "#TS",
	VectorNP: "#NP", VectorSS: "#SS", VectorGP: "#GP", VectorPF: "#PF", VectorMF: "#MF", VectorAC: "#AC",
	VectorMC: "#MC", VectorXM: "#XM", VectorVE: "#VE", VectorCP: "#CP", VectorHV: "#HV", VectorVC: "#VC",
	VectorSX: "#SX"}

// VectorName returns "#PF" for 14 and so on, "vector n" for the others.
func VectorName(v int) string {
	if n, ok := vectorNames[v]; ok {
		return n
	}
	return fmt.Sprintf("vector %d", v)
}
