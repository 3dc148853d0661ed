package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TestCDIDevicesInjected writes a CDI spec into a spec dir of this noded's own and runs containers that ask for its
// device by CDI_devices and by a device plugin's cdi.k8s.io annotation: each sees the device node, the env var and
// the mount. An unknown device fails CreateContainer with FailedPrecondition naming it, a malformed name with
// InvalidArgument, and neither leaves anything behind.
func TestCDIDevicesInjected(t *testing.T) {
	base := t.TempDir()
	specDir := filepath.Join(base, "cdi")
	hostDev := filepath.Join(base, "null0")
	data := filepath.Join(base, "data")
	for _, d := range []string{specDir, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mknod(hostDev, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "hello"), []byte("from-cdi-mount\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`{
  "cdiVersion": "0.6.0",
  "kind": "noded.test/dev",
  "devices": [{"name": "null0", "containerEdits": {
    "env": ["NODED_CDI=device-null0"],
    "deviceNodes": [{"path": "/dev/noded-cdi0", "hostPath": %q, "permissions": "rw"}],
    "mounts": [{"hostPath": %q, "containerPath": "/cdi-data", "options": ["ro", "rbind"]}]
  }}]
}`, hostDev, data)
	if err := os.WriteFile(filepath.Join(specDir, "noded-test.json"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newPodEnvWithImages(t, 71, fmt.Sprintf("[cdi]\nspec_dirs = [%q]\n", specDir), nil)
	podID, podCfg := e.newPod(t, "cdi")

	script := `test -c /dev/noded-cdi0 && echo node-ok; echo x > /dev/noded-cdi0 && echo write-ok; ` +
		`echo "env=$NODED_CDI"; cat /cdi-data/hello; touch /cdi-data/x 2>/dev/null || echo mount-ro`
	want := "node-ok\nwrite-ok\nenv=device-null0\nfrom-cdi-mount\nmount-ro\n"
	for name, opt := range map[string]ctrOpts{
		"field": func(c *runtimeapi.ContainerConfig) {
			c.CDIDevices = []*runtimeapi.CDIDevice{{Name: "noded.test/dev=null0"}}
		},
		"annotation": func(c *runtimeapi.ContainerConfig) {
			c.Annotations = map[string]string{"cdi.k8s.io/noded-test_null0": "noded.test/dev=null0"}
		},
	} {
		code, out := e.output(t, podID, podCfg, "cdi-"+name, opt, "sh", "-c", script)
		if code != 0 || out != want {
			t.Errorf("%s: exit %d, output %q, want %q", name, code, out, want)
		}
	}
	// Without CDI the container has none of it.
	if code, out := e.output(t, podID, podCfg, "no-cdi", nil, "sh", "-c", `test -e /dev/noded-cdi0 || echo "none $NODED_CDI"`); code != 0 || out != "none \n" {
		t.Errorf("container without CDI devices: exit %d, output %q", code, out)
	}

	before, err := e.n.Runtime.ListContainers(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, device string
		code         codes.Code
	}{
		{"unknown", "noded.test/dev=missing", codes.FailedPrecondition},
		{"malformed", "not-a-cdi-name", codes.InvalidArgument},
	} {
		cfg := &runtimeapi.ContainerConfig{
			Metadata:   &runtimeapi.ContainerMetadata{Name: "cdi-" + tc.name},
			Image:      &runtimeapi.ImageSpec{Image: "busybox"},
			Command:    []string{"true"},
			CDIDevices: []*runtimeapi.CDIDevice{{Name: tc.device}},
		}
		_, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg)
		if status.Code(err) != tc.code || !strings.Contains(status.Convert(err).Message(), tc.device) {
			t.Errorf("%s device: %v, want %v naming %s", tc.name, err, tc.code, tc.device)
		}
	}
	after, err := e.n.Runtime.ListContainers(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Errorf("refused creations left containers: %d before, %d after", len(before), len(after))
	}
	e.removeAllPods(t)
	e.assertNoLeaksFull(t)
}
