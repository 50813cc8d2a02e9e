package desc

import "testing"

func TestVectors(t *testing.T) {
	cases := []struct {
		v       int
		name    string
		errCode bool
	}{
		{VectorDE, "#DE", false}, {VectorDB, "#DB", false}, {VectorBP, "#BP", false},
		{VectorDF, "#DF", true}, {VectorTS, "#TS", true}, {VectorGP, "#GP", true}, {VectorPF, "#PF", true},
		{VectorAC, "#AC", true}, {VectorCP, "#CP", true}, {VectorSX, "#SX", true},
		{9, "vector 9", false}, {0x40, "vector 64", false}, {-1, "vector -1", false},
	}
	for _, c := range cases {
		if VectorName(c.v) != c.name || HasErrorCode(c.v) != c.errCode {
			t.Errorf("vector %d: %q %v, want %q %v", c.v, VectorName(c.v), HasErrorCode(c.v), c.name, c.errCode)
		}
	}
}
