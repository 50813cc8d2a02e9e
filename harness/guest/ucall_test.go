package guest

import (
	"encoding/binary"
	"strings"
	"testing"
)

func ucallPage(cmd, site, n uint64, args ...uint64) []byte {
	b := make([]byte, ucArgs+8*MaxUcallArgs)
	binary.LittleEndian.PutUint64(b[ucCmd:], cmd)
	binary.LittleEndian.PutUint64(b[ucSite:], site)
	binary.LittleEndian.PutUint64(b[ucNArgs:], n)
	for i, a := range args {
		binary.LittleEndian.PutUint64(b[ucArgs+8*i:], a)
	}
	return b
}

func TestParseUcall(t *testing.T) {
	sites := func(id uint64) *Site {
		if id == 1 {
			return &Site{ID: 1, File: "x_test.go", Line: 7, Msg: "m"}
		}
		return nil
	}
	cases := []struct {
		name    string
		page    []byte
		wantErr string
		check   func(*Ucall) bool
	}{
		{"sync", ucallPage(uint64(UcallSync), 1, 2, 5, 6), "", func(u *Ucall) bool {
			return u.Cmd == UcallSync && u.Stage() == 5 && len(u.Args) == 2 && u.Site.Line == 7
		}},
		{"unknown site", ucallPage(uint64(UcallDone), 99, 0), "", func(u *Ucall) bool { return u.Site == nil }},
		{"too many arguments", ucallPage(1, 0, MaxUcallArgs+1), "malformed ucall", nil},
		{"huge count", ucallPage(1, 0, 1<<63), "malformed ucall", nil},
		{"short page", make([]byte, 10), "short", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u, err := parseUcall(c.page, 3, sites)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || !c.check(u) || u.VCPU != 3 {
				t.Fatalf("parseUcall = %+v, %v", u, err)
			}
		})
	}
}

// FuzzParseUcall: whatever a hostile guest writes into its ucall page, the
// host decodes it or says why not, and never panics.
func FuzzParseUcall(f *testing.F) {
	f.Add(ucallPage(uint64(UcallSync), 1, 2, 5, 6))
	f.Add(ucallPage(uint64(UcallAssert), 0, 8, 1, 2, 3, 4, 5, 6, 7, 8))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, page []byte) {
		u, err := parseUcall(page, 0, func(uint64) *Site { return nil })
		if err == nil {
			if len(u.Args) > MaxUcallArgs {
				t.Fatalf("%d args", len(u.Args))
			}
			_ = u.String()
			_ = (&AssertError{Site: &Site{}, Args: u.Args}).Error()
		}
	})
}
