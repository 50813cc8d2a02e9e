package host

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestCollectFixtures(t *testing.T) {
	tests := []struct {
		root string
		want Facts
	}{
		{
			root: "testdata/pvm",
			want: Facts{
				Kernel:        "6.18.44-fc-v669",
				KernelVersion: "#1 SMP PREEMPT_DYNAMIC @0",
				Arch:          "x86_64",
				Hostname:      "vm",
				CPUModel:      "Intel(R) Xeon(R) Processor",
				CPUVendor:     "GenuineIntel",
				CPUFlags:      []string{"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "lm", "hypervisor", "avx2"},
				NumCPU:        2,
				MemTotalBytes: 24684084 * 1024,
				THP:           "madvise",
				KVMParams: map[string]map[string]string{
					"kvm":     {"enable_pmu": "N", "tdp_mmu": "N", "halt_poll_ns": "200000"},
					"kvm_pvm": {"pvm_native": "Y"},
				},
				Taint:  512,
				DevKVM: "missing",
			},
		},
		{
			// arm64 names its cpuinfo fields differently; a garbled taint
			// file and a unit-less MemTotal must not break the rest.
			root: "testdata/arm64",
			want: Facts{
				Kernel:        "6.6.0-generic",
				Arch:          "aarch64",
				CPUVendor:     "0x41",
				CPUFlags:      []string{"fp", "asimd", "evtstrm", "aes"},
				NumCPU:        2,
				MemTotalBytes: 1024,
				KVMParams:     map[string]map[string]string{},
				DevKVM:        "missing",
			},
		},
		{
			root: "testdata/does-not-exist",
			want: Facts{KVMParams: map[string]map[string]string{}, DevKVM: "missing"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.root, func(t *testing.T) {
			got := Collector{Root: tt.root}.Collect()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Collect(%s)\n got %+v\nwant %+v", tt.root, got, tt.want)
			}
		})
	}
}

func TestDevKVMStates(t *testing.T) {
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	kvm := filepath.Join(root, "dev", "kvm")
	if got := (Collector{Root: root}).devKVM(); got != "missing" {
		t.Errorf("no file: got %q, want missing", got)
	}
	if err := os.WriteFile(kvm, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if got := (Collector{Root: root}).devKVM(); got != "ok" {
		t.Errorf("openable file: got %q, want ok", got)
	}
	if os.Geteuid() == 0 {
		t.Skip("root opens files whatever their mode: cannot test permission denied")
	}
	if err := os.Chmod(kvm, 0); err != nil {
		t.Fatal(err)
	}
	if got := (Collector{Root: root}).devKVM(); got != "permission denied" {
		t.Errorf("mode 0: got %q, want permission denied", got)
	}
}

func TestPropertiesOrderAndNames(t *testing.T) {
	f := Collector{Root: "testdata/pvm"}.Collect()
	ps := f.Properties()
	index := map[string]int{}
	for i, p := range ps {
		if _, dup := index[p.Name]; dup {
			t.Errorf("property %s appears twice", p.Name)
		}
		index[p.Name] = i
	}
	want := map[string]string{
		"host.kernel":                  "6.18.44-fc-v669",
		"host.cpu":                     "Intel(R) Xeon(R) Processor",
		"host.cpu_virt":                "hypervisor",
		"host.taint":                   "512 (W)",
		"host.thp":                     "madvise",
		"host.dev_kvm":                 "missing",
		"kvm.param.kvm.enable_pmu":     "N",
		"kvm.param.kvm_pvm.pvm_native": "Y",
	}
	for name, v := range want {
		i, ok := index[name]
		if !ok {
			t.Errorf("missing property %s", name)
			continue
		}
		if ps[i].Value != v {
			t.Errorf("%s = %q, want %q", name, ps[i].Value, v)
		}
	}
	// Module parameters come after the host block, sorted, so that two
	// reports diff line by line.
	var params []string
	for _, p := range ps {
		if strings.HasPrefix(p.Name, "kvm.param.") {
			params = append(params, p.Name)
		}
	}
	wantParams := []string{"kvm.param.kvm.enable_pmu", "kvm.param.kvm.halt_poll_ns", "kvm.param.kvm.tdp_mmu", "kvm.param.kvm_pvm.pvm_native"}
	if !reflect.DeepEqual(params, wantParams) {
		t.Errorf("params %v, want %v", params, wantParams)
	}
	if index["host.kernel"] != 0 {
		t.Errorf("host.kernel is not first")
	}
}

func TestSelectedMode(t *testing.T) {
	for in, want := range map[string]string{
		"always [madvise] never": "madvise",
		"[always] madvise never": "always",
		"never":                  "never",
		"":                       "",
		"] broken [":             "] broken [",
	} {
		if got := selectedMode(in); got != want {
			t.Errorf("selectedMode(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCollectLive(t *testing.T) {
	f := Collect()
	if f.Kernel == "" || f.Arch == "" {
		t.Errorf("live host gave no kernel or arch: %+v", f)
	}
	if f.DevKVM == "" {
		t.Error("DevKVM empty: it must say ok or why not")
	}
	t.Logf("kernel %s, %s, %d CPUs, /dev/kvm %s, %d kvm modules", f.Kernel, f.CPUModel, f.NumCPU, f.DevKVM, len(f.KVMParams))
}
