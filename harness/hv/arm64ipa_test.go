package hv

import "testing"

// ARM64IPASize builds KVM's machine type (KVM_VM_TYPE_ARM_IPA_SIZE: the
// size in bits 7:0), IPABits reads it back with 0 as the default, and
// String names reserved bits so a refusal's message shows them.
func TestARM64VMType(t *testing.T) {
	cases := []struct {
		name string
		t    ARM64VMType
		want uint64
		bits int
		str  string
	}{
		{"default", 0, 0, 40, "ipa-40(default)"},
		{"32 bits", ARM64IPASize(32), 32, 32, "ipa-32"},
		{"40 bits asked for", ARM64IPASize(40), 40, 40, "ipa-40"},
		{"52 bits", ARM64IPASize(52), 52, 52, "ipa-52"},
		{"size masked to 8 bits", ARM64IPASize(0x134), 0x34, 0x34, "ipa-52"},
		{"reserved bit 8", ARM64IPASize(40) | 1<<8, 0x128, 40, "ipa-40|0x100"},
		{"reserved bit with default size", 1 << 31, 1 << 31, 40, "ipa-40(default)|0x80000000"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if uint64(c.t) != c.want {
				t.Errorf("type = %#x, want %#x", uint64(c.t), c.want)
			}
			if got := c.t.IPABits(); got != c.bits {
				t.Errorf("IPABits = %d, want %d", got, c.bits)
			}
			if got := c.t.String(); got != c.str {
				t.Errorf("String = %q, want %q", got, c.str)
			}
		})
	}
}
