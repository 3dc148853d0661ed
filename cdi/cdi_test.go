package cdi

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

const testSpec = `{
  "cdiVersion": "0.6.0",
  "kind": "example.com/gpu",
  "containerEdits": {"env": ["GPU_VENDOR=example"]},
  "devices": [
    {"name": "gpu0", "containerEdits": {
      "env": ["GPU=0"],
      "deviceNodes": [{"path": "/dev/example-gpu0", "type": "c", "major": 1, "minor": 3, "permissions": "rw"}],
      "mounts": [{"hostPath": "/usr/lib/example", "containerPath": "/usr/lib/example", "options": ["ro", "bind"]}]
    }},
    {"name": "gpu1", "containerEdits": {"env": ["GPU=1"]}}
  ]
}`

func writeSpec(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDevicesFromFieldAndAnnotations(t *testing.T) {
	cfg := &runtimeapi.ContainerConfig{
		CDIDevices: []*runtimeapi.CDIDevice{{Name: "example.com/gpu=gpu1"}, {Name: "example.com/gpu=gpu0"}},
		Annotations: map[string]string{
			"cdi.k8s.io/b-plugin": "example.com/nic=eth1",
			"cdi.k8s.io/a-plugin": "example.com/gpu=gpu0,example.com/nic=eth0",
			"other":               "not=a,device",
		},
	}
	got, err := Devices(cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"example.com/gpu=gpu1", "example.com/gpu=gpu0", "example.com/nic=eth0", "example.com/nic=eth1"}
	if !slices.Equal(got, want) {
		t.Fatalf("Devices = %v, want %v", got, want)
	}
	if got, err := Devices(&runtimeapi.ContainerConfig{}); err != nil || len(got) != 0 {
		t.Fatalf("no devices: %v, %v", got, err)
	}
}

func TestDevicesRefusesMalformedNames(t *testing.T) {
	for _, cfg := range []*runtimeapi.ContainerConfig{
		{CDIDevices: []*runtimeapi.CDIDevice{{Name: "gpu0"}}},
		{CDIDevices: []*runtimeapi.CDIDevice{{Name: ""}}},
		{Annotations: map[string]string{"cdi.k8s.io/p": "example.com/gpu=gpu0,nonsense"}},
	} {
		if _, err := Devices(cfg); !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("Devices(%v) = %v, want InvalidArgument", cfg, err)
		}
	}
}

func TestInjectAppliesDeviceNodeEnvAndMount(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, "example.json", testSpec)
	r, err := New([]string{filepath.Join(t.TempDir(), "missing"), dir})
	if err != nil {
		t.Fatal(err)
	}
	spec := &specs.Spec{Process: &specs.Process{Env: []string{"PATH=/bin"}}, Linux: &specs.Linux{Resources: &specs.LinuxResources{}}}
	if err := r.Inject(spec, []string{"example.com/gpu=gpu0"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []string{"PATH=/bin", "GPU=0", "GPU_VENDOR=example"} {
		if !slices.Contains(spec.Process.Env, e) {
			t.Errorf("env %v lacks %s", spec.Process.Env, e)
		}
	}
	if len(spec.Linux.Devices) != 1 || spec.Linux.Devices[0].Path != "/dev/example-gpu0" || spec.Linux.Devices[0].Major != 1 {
		t.Errorf("devices = %+v", spec.Linux.Devices)
	}
	allowed := false
	for _, d := range spec.Linux.Resources.Devices {
		if d.Allow && d.Major != nil && *d.Major == 1 && d.Minor != nil && *d.Minor == 3 && d.Access == "rw" {
			allowed = true
		}
	}
	if !allowed {
		t.Errorf("no cgroup rule allows the device: %+v", spec.Linux.Resources.Devices)
	}
	if len(spec.Mounts) != 1 || spec.Mounts[0].Destination != "/usr/lib/example" {
		t.Errorf("mounts = %+v", spec.Mounts)
	}
}

func TestUnknownDeviceIsFailedPreconditionNamingIt(t *testing.T) {
	dir := t.TempDir()
	writeSpec(t, dir, "example.json", testSpec)
	writeSpec(t, dir, "broken.json", "{not json")
	r, err := New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check([]string{"example.com/gpu=gpu1"}); err != nil {
		t.Fatalf("a known device beside a broken spec: %v", err)
	}
	spec := &specs.Spec{Process: &specs.Process{}, Linux: &specs.Linux{}}
	err = r.Inject(spec, []string{"example.com/gpu=gpu0", "example.com/gpu=gpu9"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "example.com/gpu=gpu9") ||
		strings.Contains(err.Error(), "gpu0,") {
		t.Fatalf("err = %v, want FailedPrecondition naming gpu9", err)
	}
	if len(spec.Process.Env) != 0 || len(spec.Linux.Devices) != 0 {
		t.Fatalf("a failed injection edited the spec: %+v", spec)
	}
}

func TestSpecWrittenAfterStartIsSeen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run-cdi")
	r, err := New([]string{dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Check([]string{"example.com/gpu=gpu1"}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("before the spec exists: %v", err)
	}
	writeSpec(t, dir, "example.json", testSpec)
	if err := r.Check([]string{"example.com/gpu=gpu1"}); err != nil {
		t.Fatalf("after the spec is written: %v", err)
	}
}

func TestNewRefusesRelativeDirs(t *testing.T) {
	if _, err := New([]string{"etc/cdi"}); err == nil {
		t.Fatal("relative spec dir accepted")
	}
}
