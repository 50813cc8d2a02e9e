package lightnvm

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// Hand-written from the kernel's show functions (scnprintf formats) for
// the small fixtures: every attribute, its exact bytes.
func TestSysfsGolden(t *testing.T) {
	cases := []struct {
		fixture string
		want    map[string]string
	}{
		{"small-2.0.json", map[string]string{
			"version": "2.0\n", "capabilities": "0\n", "groups": "2\n", "punits": "2\n", "chunks": "4\n", "clba": "32\n",
			"ws_min": "4\n", "ws_opt": "8\n", "maxoc": "6\n", "maxocpu": "3\n", "mw_cunits": "8\n",
			"read_typ": "20000\n", "read_max": "40000\n", "write_typ": "100000\n", "write_max": "200000\n",
			"reset_typ": "300000\n", "reset_max": "500000\n",
		}},
		{"small-1.2.json", map[string]string{
			"version": "1\n", "capabilities": "0\n", "vendor_opcode": "0\n", "device_mode": "0\n", "media_manager": "gennvm\n",
			// ch 12+1, lun 10+2, pln 2+1, blk 6+4, pg 3+3, sec 0+2 (offset, length).
			"ppa_format": "0x0c010a020201060403030002\n", "media_type": "0\n", "flash_media_type": "0\n",
			"num_channels": "2\n", "num_luns": "4\n", "num_planes": "2\n", "num_blocks": "16\n", "num_pages": "8\n",
			"page_size": "16384\n", "hw_sector_size": "4096\n", "oob_sector_size": "16\n",
			"read_typ": "10000\n", "read_max": "20000\n", "prog_typ": "50000\n", "prog_max": "100000\n",
			"erase_typ": "200000\n", "erase_max": "400000\n", "multiplane_modes": "0x00020202\n",
			"media_capabilities": "0x00000000\n", "max_phys_secs": "64\n",
		}},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			g, err := LoadGeometry(filepath.Join("..", "..", "fixtures", "lightnvm", c.fixture))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			grp, err := WriteSysfs(dir, g)
			if err != nil {
				t.Fatal(err)
			}
			ents, _ := os.ReadDir(grp)
			if len(ents) != len(c.want) {
				t.Errorf("%d files, want %d", len(ents), len(c.want))
			}
			for name, want := range c.want {
				got, err := os.ReadFile(filepath.Join(grp, name))
				if err != nil || string(got) != want {
					t.Errorf("%s = %q (%v), want %q", name, got, err, want)
				}
			}
			back, err := ReadSysfs(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.SysfsAttributes(), g.SysfsAttributes()) {
				t.Fatalf("read back %+v, want %+v", back, g)
			}
		})
	}
}

// Every fixture loads, and its tree round-trips.
func TestFixturesRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "fixtures", "lightnvm", "*.json"))
	if len(files) < 4 {
		t.Fatalf("fixtures: %v", files)
	}
	for _, f := range files {
		g, err := LoadGeometry(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if _, err := WriteSysfs(dir, g); err != nil {
			t.Fatal(err)
		}
		back, err := ReadSysfs(dir)
		if err != nil || !reflect.DeepEqual(back.SysfsAttributes(), g.SysfsAttributes()) {
			t.Fatalf("%s: round trip %v", f, err)
		}
		// The identify the device would answer agrees with sysfs too.
		id, err := ParseIdentity(g.Identity())
		if err != nil || !reflect.DeepEqual(id.SysfsAttributes(), g.SysfsAttributes()) {
			t.Fatalf("%s: identity and sysfs disagree: %v", f, err)
		}
	}
}

func TestSysfsErrors(t *testing.T) {
	g := smallGeometry()
	ro := filepath.Join(t.TempDir(), "ro")
	os.Mkdir(ro, 0o555)
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	for _, dir := range []string{file, filepath.Join(file, "below")} {
		if _, err := WriteSysfs(dir, g); err == nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("WriteSysfs(%s): %v, want an error naming it", dir, err)
		}
	}
	if os.Geteuid() != 0 {
		if _, err := WriteSysfs(ro, g); err == nil || !strings.Contains(err.Error(), ro) {
			t.Errorf("read-only directory: %v", err)
		}
	}
	bad := g
	bad.WSOpt = 5
	if _, err := WriteSysfs(t.TempDir(), bad); err == nil {
		t.Error("invalid geometry written")
	}
	// Reading: a malformed file names itself.
	dir := t.TempDir()
	WriteSysfs(dir, g)
	p := filepath.Join(dir, SysfsGroup, "clba")
	os.WriteFile(p, []byte("thirty\n"), 0o644)
	if _, err := ReadSysfs(dir); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("malformed clba: %v", err)
	}
	os.WriteFile(p, []byte("32"), 0o644)
	if _, err := ReadSysfs(dir); err == nil {
		t.Error("clba without a newline accepted")
	}
}

func TestGeometryFileErrors(t *testing.T) {
	cases := []struct{ name, json, want string }{
		{"unknown key", `{"version":"2.0","groups":1,"punits":1,"chunks":1,"clba":4,"ws_min":4,"ws_opt":4,"maxoc":1,"maxocpu":1,"hw_sector_size":4096,"chunk":3}`, "unknown field"},
		{"bad version", `{"version":"3.0","hw_sector_size":4096}`, "version"},
		{"sector size", `{"version":"2.0","hw_sector_size":1000}`, "hw_sector_size"},
		{"1.2 with 2.0 keys", `{"version":"1.2","num_channels":1,"num_luns":1,"num_planes":1,"num_blocks":1,"num_pages":1,"page_size":4096,"hw_sector_size":4096,"clba":3}`, "derived"},
		{"2.0 with 1.2 keys", `{"version":"2.0","num_channels":1,"hw_sector_size":4096}`, "1.2 geometry keys"},
		{"too many chunks", `{"version":"2.0","groups":65535,"punits":65535,"chunks":4,"clba":4,"ws_min":4,"ws_opt":4,"maxoc":1,"maxocpu":1,"hw_sector_size":4096}`, "more than"},
		{"clba not a ws_min multiple", `{"version":"2.0","groups":1,"punits":1,"chunks":1,"clba":6,"ws_min":4,"ws_opt":4,"maxoc":1,"maxocpu":1,"hw_sector_size":4096}`, "multiple of ws_min"},
		{"typ above max", `{"version":"2.0","groups":1,"punits":1,"chunks":1,"clba":4,"ws_min":4,"ws_opt":4,"maxoc":1,"maxocpu":1,"hw_sector_size":4096,"read_typ":5,"read_max":4}`, "exceeds"},
	}
	for _, c := range cases {
		_, err := ParseGeometry([]byte(c.json))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if _, err := LoadGeometry("/no/such/geometry.json"); err == nil || !strings.Contains(err.Error(), "/no/such/geometry.json") {
		t.Errorf("missing file: %v", err)
	}
}
