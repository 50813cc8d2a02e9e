package main

// Tests of the fleet engines (docs/fleet.md): the GitHub Actions shard
// matrix, the Kubernetes indexed Job and the LAVA test definition. Each
// file is decoded strictly and its shell is run with stand-ins for the
// tools it calls, so that a shard count, a path or a flag that do not
// agree across a file fail here rather than in a fleet.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// decodeStrict decodes a YAML file into v, refusing fields v lacks: a
// misspelt key (completionmode, restartPolicy in the wrong place) fails.
func decodeStrict(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", path))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// fakeTools makes a directory of stand-in commands that log their
// arguments, one line per call, to log; put it first on PATH.
func fakeTools(t *testing.T, names ...string) (dir, log string) {
	t.Helper()
	dir = t.TempDir()
	log = filepath.Join(dir, "calls.log")
	for _, n := range names {
		script := fmt.Sprintf("#!/bin/sh\necho %s \"$@\" >> %q\nexit ${FAKE_EXIT:-0}\n", n, log)
		if err := os.WriteFile(filepath.Join(dir, n), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, log
}

func calls(t *testing.T, log string) []string {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func runShell(t *testing.T, script string, env ...string) error {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("%s", out)
	}
	return err
}

// The GitHub Actions fleet: a shard × backend matrix whose shard list and
// SHARDS agree, /dev/kvm opened to the runner by udev, each shard's report
// directory uploaded, and a merge job per backend that runs even when a
// shard failed and publishes the merged JUnit and HTML.
func TestFleetWorkflow(t *testing.T) {
	var wf struct {
		Env  map[string]string `yaml:"env"`
		Jobs map[string]struct {
			Needs    string `yaml:"needs"`
			If       string `yaml:"if"`
			Strategy struct {
				Matrix map[string][]any `yaml:"matrix"`
			} `yaml:"strategy"`
			Steps []struct {
				Name string            `yaml:"name"`
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				If   string            `yaml:"if"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	var loose map[string]any
	decodeStrict(t, ".github/workflows/fleet.yml", &loose)
	b, _ := yaml.Marshal(loose)
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatal(err)
	}
	shard, merge := wf.Jobs["shard"], wf.Jobs["merge"]
	n, _ := strconv.Atoi(wf.Env["SHARDS"])
	var shards []int
	for _, s := range shard.Strategy.Matrix["shard"] {
		shards = append(shards, s.(int))
	}
	if n < 2 || !slices.Equal(shards, seq(n)) {
		t.Fatalf("matrix.shard %v, SHARDS %d: want 1..SHARDS", shards, n)
	}
	for _, j := range []string{"shard", "merge"} {
		if got := fmt.Sprint(wf.Jobs[j].Strategy.Matrix["backend"]); got != "[kvm emu]" {
			t.Errorf("%s job backends %s", j, got)
		}
	}
	all := func(job string) string {
		var s []string
		for _, st := range wf.Jobs[job].Steps {
			s = append(s, st.If, st.Uses, st.Run, fmt.Sprint(st.With))
		}
		return strings.Join(s, "\n")
	}
	inOrder(t, "fleet.yml shard", all("shard"),
		`KERNEL=="kvm", GROUP="kvm", MODE="0666"`, "udevadm trigger",
		"make build",
		"bin/kvmspec run --backend ${{ matrix.backend }} --shard ${{ matrix.shard }}/${SHARDS}",
		`--report-dir "reports/shards/${{ matrix.backend }}-${{ matrix.shard }}"`,
		"always()", "upload-artifact@", "shard-${{ matrix.backend }}-${{ matrix.shard }}",
		"reports/shards/${{ matrix.backend }}-${{ matrix.shard }}/")
	if merge.Needs != "shard" || merge.If != "always()" {
		t.Errorf("merge job needs %q if %q: want it after every shard, even failed ones", merge.Needs, merge.If)
	}
	inOrder(t, "fleet.yml merge", all("merge"),
		"make build", "download-artifact@", "shard-${{ matrix.backend }}-*",
		`bin/kvmspec merge "reports/merged/${{ matrix.backend }}" reports/shards/shard-${{ matrix.backend }}-*`,
		"bin/kvmspec report --out", "always()", "action-junit-report@", "reports/merged/${{ matrix.backend }}/junit.xml",
		"always()", "upload-artifact@", "reports/merged/${{ matrix.backend }}/")

	// The run step's shell: exit 1 (a failing spec) lets the job succeed
	// so the merge reports it; exit 2 fails the step.
	var runStep string
	for _, st := range shard.Steps {
		if strings.Contains(st.Run, "bin/kvmspec run") {
			runStep = st.Run
		}
	}
	tools, log := fakeTools(t, "kvmspec")
	script := strings.NewReplacer("${{ matrix.backend }}", "emu", "${{ matrix.shard }}", "2", "${{ github.run_id }}", "99",
		"bin/kvmspec", filepath.Join(tools, "kvmspec")).Replace(runStep)
	for code, ok := range map[int]bool{0: true, 1: true, 2: false} {
		err := runShell(t, script, "SHARDS=3", fmt.Sprintf("FAKE_EXIT=%d", code))
		if (err == nil) != ok {
			t.Errorf("run step with kvmspec exit %d: step error %v", code, err)
		}
	}
	if c := calls(t, log)[0]; c != "kvmspec run --backend emu --shard 2/3 --seed 99 --report-dir reports/shards/emu-2" {
		t.Errorf("run step calls %q", c)
	}
	if al, err := exec.LookPath("actionlint"); err == nil {
		cmd := exec.Command(al, "fleet.yml", "ci.yml", "nightly.yml")
		cmd.Dir = filepath.Join("..", "..", ".github", "workflows")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("actionlint: %v\n%s", err, out)
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i + 1
	}
	return s
}

// k8sPodSpec is the part of core/v1 PodSpec the manifests use, for the
// structural test's convenience; TestKubernetesManifestsDecodeStrictly
// decodes the same files into the real k8s.io/api types.
type k8sPodSpec struct {
	RestartPolicy string `yaml:"restartPolicy"`
	Containers    []struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Env     []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"env"`
		Resources struct {
			Limits   map[string]string `yaml:"limits"`
			Requests map[string]string `yaml:"requests"`
		} `yaml:"resources"`
		VolumeMounts []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type k8sMeta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels"`
}

type k8sJob struct {
	APIVersion string  `yaml:"apiVersion"`
	Kind       string  `yaml:"kind"`
	Metadata   k8sMeta `yaml:"metadata"`
	Spec       struct {
		CompletionMode       string `yaml:"completionMode"`
		Completions          int    `yaml:"completions"`
		Parallelism          int    `yaml:"parallelism"`
		BackoffLimit         *int   `yaml:"backoffLimit"`
		BackoffLimitPerIndex *int   `yaml:"backoffLimitPerIndex"`
		MaxFailedIndexes     *int   `yaml:"maxFailedIndexes"`
		Template             struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// The Kubernetes indexed Job runs shard index+1 of N for each completion
// index with /dev/kvm from the device plugin, writes where the merge Job
// reads, and the merge Job merges exactly shards 1..N.
func TestKubernetesIndexedJob(t *testing.T) {
	var pvc struct {
		APIVersion string  `yaml:"apiVersion"`
		Kind       string  `yaml:"kind"`
		Metadata   k8sMeta `yaml:"metadata"`
		Spec       struct {
			AccessModes []string `yaml:"accessModes"`
			Resources   struct {
				Requests map[string]string `yaml:"requests"`
			} `yaml:"resources"`
		} `yaml:"spec"`
	}
	decodeStrict(t, "deploy/kubernetes/pvc.yaml", &pvc)
	var shards, merge k8sJob
	decodeStrict(t, "deploy/kubernetes/shards-job.yaml", &shards)
	decodeStrict(t, "deploy/kubernetes/merge-job.yaml", &merge)
	if pvc.Kind != "PersistentVolumeClaim" || !slices.Contains(pvc.Spec.AccessModes, "ReadWriteMany") {
		t.Errorf("pvc: %+v (the shards on many nodes write it at once)", pvc)
	}
	s := shards.Spec
	if shards.APIVersion != "batch/v1" || shards.Kind != "Job" || s.CompletionMode != "Indexed" || s.Completions != s.Parallelism || s.Completions < 2 {
		t.Fatalf("shards job: %s %s mode %q completions %d parallelism %d", shards.APIVersion, shards.Kind, s.CompletionMode, s.Completions, s.Parallelism)
	}
	n := s.Completions
	for name, j := range map[string]k8sJob{"shards": shards, "merge": merge} {
		p := j.Spec.Template.Spec
		if p.RestartPolicy != "Never" || len(p.Containers) != 1 || len(p.Volumes) != 1 || p.Volumes[0].PersistentVolumeClaim.ClaimName != pvc.Metadata.Name {
			t.Errorf("%s job pod: restart %q, %d containers, volumes %+v", name, p.RestartPolicy, len(p.Containers), p.Volumes)
			continue
		}
		c := p.Containers[0]
		if len(c.VolumeMounts) != 1 || c.VolumeMounts[0].Name != p.Volumes[0].Name || c.VolumeMounts[0].MountPath != "/reports" {
			t.Errorf("%s job mounts %+v", name, c.VolumeMounts)
		}
		if len(c.Command) != 3 || c.Command[0] != "/bin/sh" || c.Command[1] != "-c" {
			t.Errorf("%s job command %q", name, c.Command)
		}
	}
	c := s.Template.Spec.Containers[0]
	if c.Resources.Limits["devices.kubevirt.io/kvm"] != "1" {
		t.Errorf("shards job limits %v: no /dev/kvm from the device plugin", c.Resources.Limits)
	}
	tools, log := fakeTools(t, "kvmspec")
	path := "PATH=" + tools + ":" + os.Getenv("PATH")
	for i := range n {
		env := []string{path, fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)}
		for _, e := range c.Env {
			env = append(env, e.Name+"="+e.Value)
		}
		if err := runShell(t, c.Command[2], env...); err != nil {
			t.Errorf("index %d: %v", i, err)
		}
	}
	var want []string
	var dirs []string
	for i := 1; i <= n; i++ {
		want = append(want, fmt.Sprintf("kvmspec run --backend kvm --shard %d/%d --seed 1 --report-dir /reports/shard-%d", i, n, i))
		dirs = append(dirs, fmt.Sprintf("/reports/shard-%d", i))
	}
	if got := calls(t, log); !slices.Equal(got, want) {
		t.Errorf("indices ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := runShell(t, c.Command[2], path, "JOB_COMPLETION_INDEX=0", "FAKE_EXIT=2"); err == nil {
		t.Error("a shard with bad usage (exit 2) does not fail its index")
	}
	os.Remove(log)
	if err := runShell(t, merge.Spec.Template.Spec.Containers[0].Command[2], path); err != nil {
		t.Errorf("merge: %v", err)
	}
	wantMerge := []string{"kvmspec merge /reports/merged " + strings.Join(dirs, " "),
		"kvmspec report --out /reports/merged/report.html /reports/merged/report.json"}
	if got := calls(t, log); !slices.Equal(got, wantMerge) {
		t.Errorf("merge job ran\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantMerge, "\n"))
	}
}

// The LAVA test definition is well-formed, its step runs the script with
// the declared parameters, and the script reports every testcase of a
// real emu run with lava-test-case: as many as junit.xml has, with the
// same passes and skips, under unique LAVA-valid names.
func TestLAVADefinition(t *testing.T) {
	var def struct {
		Metadata struct {
			Format      string   `yaml:"format"`
			Name        string   `yaml:"name"`
			Description string   `yaml:"description"`
			Maintainer  []string `yaml:"maintainer"`
			OS          []string `yaml:"os"`
			Scope       []string `yaml:"scope"`
			Devices     []string `yaml:"devices"`
		} `yaml:"metadata"`
		Params map[string]string `yaml:"params"`
		Run    struct {
			Steps []string `yaml:"steps"`
		} `yaml:"run"`
	}
	decodeStrict(t, "deploy/lava/kvmspec.yaml", &def)
	if def.Metadata.Format != "Lava-Test Test Definition 1.0" || def.Metadata.Name == "" || len(def.Run.Steps) != 1 {
		t.Fatalf("definition: %+v", def)
	}
	step := def.Run.Steps[0]
	for _, ref := range regexp.MustCompile(`\$\{(\w+)\}`).FindAllStringSubmatch(step, -1) {
		if _, ok := def.Params[ref[1]]; !ok {
			t.Errorf("step uses ${%s}, not a declared param", ref[1])
		}
	}
	script := strings.Fields(step)[0]
	if st, err := os.Stat(filepath.Join("..", "..", script)); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("step runs %s: %v (must exist and be executable)", script, err)
	}

	tools, log := fakeTools(t, "lava-test-case")
	if err := os.Symlink(binary, filepath.Join(tools, "kvmspec")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	cmd := exec.Command(filepath.Join("..", "..", script), "", "emu", "smoke", "")
	cmd.Env = append(os.Environ(), "PATH="+tools+":"+os.Getenv("PATH"), "KVMSPEC_OUT="+out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, b)
	}
	j := readJUnit(t, out)
	var skipped int
	for _, s := range j.Suites {
		skipped += s.Skipped
	}
	got := calls(t, log)
	if len(got) != j.Tests+1 || got[len(got)-1] != "lava-test-case kvmspec-run --result pass" {
		t.Fatalf("%d lava-test-case calls for %d testcases, last %q", len(got), j.Tests, got[len(got)-1])
	}
	names := map[string]bool{}
	count := map[string]int{}
	valid := regexp.MustCompile(`^lava-test-case (emu\.smoke\.[A-Za-z0-9_.-]{1,90}) --result (pass|fail|skip)$`)
	for _, c := range got[:len(got)-1] {
		m := valid.FindStringSubmatch(c)
		if m == nil || names[m[1]] {
			t.Errorf("bad or repeated call %q", c)
			continue
		}
		names[m[1]] = true
		count[m[2]]++
	}
	if count["skip"] != skipped || count["fail"] != j.Failures+j.Errors || count["pass"] != j.Tests-skipped-j.Failures-j.Errors {
		t.Errorf("lava results %v; junit tests %d failures %d skipped %d", count, j.Tests, j.Failures, skipped)
	}
}

// decodeK8s decodes a manifest into the real Kubernetes API type, strictly:
// YAML to JSON, then encoding/json with unknown fields refused, as
// `kubectl apply --validate=strict` would refuse them.
func decodeK8s(t *testing.T, path string, v any) {
	t.Helper()
	var doc any
	decodeStrict(t, path, &doc)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s as %T: %v", path, v, err)
	}
}

// The manifests are valid objects of the real k8s.io/api types, with the
// fields the structural test above relies on.
func TestKubernetesManifestsDecodeStrictly(t *testing.T) {
	var pvc corev1.PersistentVolumeClaim
	decodeK8s(t, "deploy/kubernetes/pvc.yaml", &pvc)
	if pvc.Kind != "PersistentVolumeClaim" || pvc.APIVersion != "v1" {
		t.Errorf("pvc: %s %s", pvc.APIVersion, pvc.Kind)
	}
	for _, f := range []string{"deploy/kubernetes/shards-job.yaml", "deploy/kubernetes/merge-job.yaml"} {
		var j batchv1.Job
		decodeK8s(t, f, &j)
		if j.Kind != "Job" || j.APIVersion != "batch/v1" || len(j.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s: %s %s with %d containers", f, j.APIVersion, j.Kind, len(j.Spec.Template.Spec.Containers))
		}
	}
	var shards batchv1.Job
	decodeK8s(t, "deploy/kubernetes/shards-job.yaml", &shards)
	if m := shards.Spec.CompletionMode; m == nil || *m != batchv1.IndexedCompletion {
		t.Errorf("shards job completion mode %v, want Indexed", m)
	}
	lim := shards.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceName("devices.kubevirt.io/kvm")]
	if lim.Value() != 1 {
		t.Errorf("shards job asks for %v of devices.kubevirt.io/kvm, want 1", lim.String())
	}
}
