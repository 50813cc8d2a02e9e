package lightnvm

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Check 10: persistence across device reset, a new device (a new VM) and
// a killed process.
func TestPersistenceSurvivesResetAndNewDevice(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ocssd.state")
	r := newRig(t, Config{Backing: path})
	q := r.ioQueue(1, 16, -1)
	r.write(q, r.seq(0, 1, 1, 0, 12)...)
	fill(r, q, 1, 0, 3)
	offline(r, q, 1, 1, 0)
	want := []Chunk{r.chunk(0, 1, 1), r.chunk(1, 0, 3), r.chunk(1, 1, 0)}

	// Device reset (hv.Device.Reset) keeps the media.
	if err := r.dev.Reset(); err != nil {
		t.Fatal(err)
	}
	if r.r32(RegCSTS)&CSTSReady != 0 {
		t.Fatal("controller still ready after reset")
	}
	r.enable()
	q = r.ioQueue(1, 16, -1)
	if got := r.chunk(0, 1, 1); got != want[0] {
		t.Fatalf("after device reset: %v, want %v", got, want[0])
	}
	// New queues after the reset append at the kept write pointer.
	if st := r.write(q, r.seq(0, 1, 1, 12, 4)...).Status; st != 0 {
		t.Fatalf("append after device reset: %v", st)
	}
	want[0] = r.chunk(0, 1, 1)
	if err := r.dev.Close(); err != nil {
		t.Fatal(err)
	}

	// A new device on new guest memory (a new VM) from the same file.
	r2 := newRig(t, Config{Backing: path})
	got := []Chunk{r2.chunk(0, 1, 1), r2.chunk(1, 0, 3), r2.chunk(1, 1, 0)}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("chunk %d in a new VM: %v, want %v", i, got[i], want[i])
		}
	}
	q2 := r2.ioQueue(1, 16, -1)
	if cqe, data := r2.read(q2, r2.lba(1, 0, 3, 17)); cqe.Status != 0 || !bytes.Equal(data, Pattern(r2.lba(1, 0, 3, 17), 4096)) {
		t.Fatalf("data in a new VM: %v", cqe.Status)
	}
	// The write pointer continues where it was.
	if st := r2.write(q2, r2.seq(0, 1, 1, 16, 4)...).Status; st != 0 {
		t.Fatalf("append at the persisted wp: %v", st)
	}
}

func TestPersistenceBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	r := newRig(t, Config{Backing: good})
	q := r.ioQueue(1, 16, -1)
	r.write(q, r.seq(0, 0, 0, 0, 4)...)
	r.dev.Close()
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	other := smallGeometry()
	other.Chunks = 8
	cases := []struct {
		name string
		data []byte
		geo  Geometry
		want string
	}{
		{"truncated", raw[:len(raw)-7], smallGeometry(), "truncated"},
		{"truncated header", raw[:10], smallGeometry(), "truncated"},
		{"empty", nil, smallGeometry(), "bad magic"},
		{"flipped bit", flip(raw, stateHeader+9), smallGeometry(), "checksum mismatch"},
		{"trailing bytes", append(append([]byte(nil), raw...), 0), smallGeometry(), "trailing"},
		{"other geometry", raw, other, "another geometry"},
		{"not a state file", []byte("hello, world, this is text"), smallGeometry(), "bad magic"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, c.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, ga := newMemAccess(t)
			_, err := New(ga, nil, Config{Geometry: c.geo, Backing: p})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %v: want one naming %s and saying %q", err, p, c.want)
			}
			// Never silently reset: the file is untouched.
			if now, _ := os.ReadFile(p); !bytes.Equal(now, c.data) {
				t.Fatal("the bad file was rewritten")
			}
		})
	}
	t.Run("unwritable directory", func(t *testing.T) {
		_, ga := newMemAccess(t)
		if _, err := New(ga, nil, Config{Geometry: smallGeometry(), Backing: "/proc/no/such/dir/state"}); err == nil {
			t.Fatal("backing file in a missing directory accepted")
		}
	})
}

func flip(b []byte, at int) []byte {
	c := append([]byte(nil), b...)
	c[at] ^= 0x10
	return c
}

// The kill -9 test: a child process writes a chunk through the device's
// queues and prints each acknowledged write pointer; the parent kills it
// mid-run and reopens the file. The persisted write pointer must not be
// behind any the child saw acknowledged, and the acknowledged data reads
// back.
const childEnv = "LIGHTNVM_KILL_CHILD_STATE"

func TestPersistenceKillChild(t *testing.T) {
	if p := os.Getenv(childEnv); p != "" {
		killChild(t, p)
		return
	}
	for round := 0; round < 3; round++ {
		path := filepath.Join(t.TempDir(), "ocssd.state")
		cmd := exec.Command(os.Args[0], "-test.run=^TestPersistenceKillChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+path)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		acked, lines := 0, 0
		stopAt := 40 + 37*round
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != "wp" {
				continue
			}
			n, _ := strconv.Atoi(f[1])
			acked, lines = n, lines+1
			if lines == stopAt {
				cmd.Process.Kill() // SIGKILL, mid-write
				break
			}
		}
		cmd.Wait()
		if lines < stopAt {
			t.Fatalf("child ended after %d acknowledgements, before the kill", lines)
		}
		r := newRig(t, Config{Backing: path, Geometry: killGeometry()})
		c := r.chunk(0, 0, 0)
		if c.WP < uint64(acked) {
			t.Fatalf("round %d: write pointer regressed to %d after kill -9; %d was acknowledged", round, c.WP, acked)
		}
		q := r.ioQueue(1, 16, -1)
		// Sectors below the last acknowledged wp minus mw_cunits read back.
		for s := 0; s+r.dev.geo.MWCunit < acked && s < 64; s += 7 {
			if cqe, data := r.read(q, r.lba(0, 0, 0, s)); cqe.Status != 0 || !bytes.Equal(data, Pattern(r.lba(0, 0, 0, s), 4096)) {
				t.Fatalf("round %d: acknowledged sector %d lost: %v", round, s, cqe.Status)
			}
		}
		t.Logf("round %d: killed after wp %d acknowledged; persisted wp %d", round, acked, c.WP)
	}
}

func killGeometry() Geometry {
	g := smallGeometry()
	g.CLBA = 1 << 16
	return g
}

func killChild(t *testing.T, path string) {
	r := newRig(t, Config{Backing: path, Geometry: killGeometry()})
	q := r.ioQueue(1, 16, -1)
	w := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(30 * time.Second)
	mark := r.next
	for s := 0; s < 1<<16 && time.Now().Before(deadline); s += 4 {
		r.next = mark // reuse the buffers
		if st := r.write(q, r.seq(0, 0, 0, s, 4)...).Status; st != 0 {
			t.Fatalf("child write at %d: %v", s, st)
		}
		fmt.Fprintf(w, "wp %d\n", s+4)
		w.Flush()
	}
}
