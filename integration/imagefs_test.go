package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// TestImageFsInfoReportsContainerFilesystem checks ImageFsInfo's container_filesystems (the writable layers,
// as CRI-O reports them): a container that writes 2 MiB into its rootfs raises their usage by that much, and the
// image filesystem does not count it.
func TestImageFsInfoReportsContainerFilesystem(t *testing.T) {
	e := newPodEnv(t, 71, nil)
	fsInfo := func() (img, ctr *runtimeapi.FilesystemUsage) {
		t.Helper()
		resp, err := e.n.Image.ImageFsInfo(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetImageFilesystems()) != 1 || len(resp.GetContainerFilesystems()) != 1 {
			t.Fatalf("ImageFsInfo = %v, want one image and one container filesystem", resp)
		}
		return resp.ImageFilesystems[0], resp.ContainerFilesystems[0]
	}
	img0, ctr0 := fsInfo()
	if ctr0.GetFsId().GetMountpoint() == "" || !strings.HasPrefix(ctr0.GetFsId().GetMountpoint(), e.n.Root) {
		t.Errorf("container fs mountpoint %q, want noded's snapshot dir under %s", ctr0.GetFsId().GetMountpoint(), e.n.Root)
	}
	cfg := e.podConfig(t, "ctrfs")
	pod := e.runPod(t, cfg)
	defer func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, pod) }()
	id := e.runContainer(t, pod, cfg, "writer", nil, "sh", "-c", "dd if=/dev/zero of=/blob bs=1024 count=2048 && sync && sleep 3600")
	var ctr *runtimeapi.FilesystemUsage
	// The layer usage is cached for a few seconds (as for ContainerStats): wait for a reading that has the file.
	waitFor(t, 90*time.Second, "the writable layer usage to count the 2 MiB file", func() bool {
		_, ctr = fsInfo()
		return ctr.GetUsedBytes().GetValue() >= ctr0.GetUsedBytes().GetValue()+2<<20
	})
	if ctr.GetInodesUsed().GetValue() <= ctr0.GetInodesUsed().GetValue() {
		t.Errorf("container fs inodes %d, want more than %d", ctr.GetInodesUsed().GetValue(), ctr0.GetInodesUsed().GetValue())
	}
	img, _ := fsInfo()
	if img.GetUsedBytes().GetValue() >= img0.GetUsedBytes().GetValue()+2<<20 {
		t.Errorf("image fs grew from %d to %d bytes: it counts the writable layer", img0.GetUsedBytes().GetValue(), img.GetUsedBytes().GetValue())
	}
	_ = e.n.Runtime.StopContainer(e.ctx, id, 0)
}

// TestStatusVerboseConfig checks Status(verbose) "config": the effective configuration as a JSON object with the
// TOML keys (as crictl info prints it), registry credentials redacted.
func TestStatusVerboseConfig(t *testing.T) {
	n := framework.Start(t, framework.Options{Config: `[registry.hosts."private.example.com".auth]
username = "robot-user"
password = "s3cret-passw0rd"
identity_token = "s3cret-token"
`})
	st, err := n.Runtime.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	raw := st.GetInfo()["config"]
	for _, secret := range []string{"s3cret-passw0rd", "s3cret-token", "robot-user"} {
		if strings.Contains(raw, secret) {
			t.Errorf("Status verbose config shows %q: %s", secret, raw)
		}
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatalf("Status verbose config %q is not a JSON object: %v", raw, err)
	}
	if cfg["default_runtime"] != "runc" || cfg["cgroup_driver"] != "cgroupfs" || cfg["root"] != n.Root || cfg["cgroup_parent"] != n.CgroupParent {
		t.Errorf("config = %v", cfg)
	}
	auth := cfg["registry"].(map[string]any)["hosts"].(map[string]any)["private.example.com"].(map[string]any)["auth"].(map[string]any)
	if auth["password"] != "<redacted>" {
		t.Errorf("auth = %v, want the password shown as redacted", auth)
	}
	if st, err := n.Runtime.Status(context.Background(), false); err != nil || len(st.GetInfo()) != 0 {
		t.Errorf("Status without verbose = %v, %v; want no info", st.GetInfo(), err)
	}
}

// waitFor polls cond until it holds; the timeout only bounds a failing test.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
