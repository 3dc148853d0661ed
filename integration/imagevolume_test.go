package integration

import (
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/faultinject"
	"github.com/noded/noded/internal/testimage"
)

// volumeImage is a data-only image of two layers (so its view is an overlay): files in both, a sub directory,
// and symlinks that point out of the image.
func volumeImage(t *testing.T) v1.Image {
	t.Helper()
	lower, upper := testimage.NewFS(), testimage.NewFS()
	lower.WriteFile("data/hello.txt", []byte("hello-volume\n"), 0o644)
	lower.WriteFile("data/sub/inner.txt", []byte("inner\n"), 0o644)
	upper.WriteFile("data/second.txt", []byte("second-layer\n"), 0o644)
	upper.Symlink("../../../../../etc", "escape")
	upper.Symlink("/etc", "abs")
	upper.Symlink("data/sub", "inner")
	var layers []v1.Layer
	for _, fsys := range []*testimage.FS{lower, upper} {
		l, err := testimage.LayerFromFS(fsys, testimage.Gzip, testimage.OCI)
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := testimage.Assemble(layers, v1.Config{}, testimage.OCI, nil)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestImageVolumes mounts a pulled image into containers as kubelet does for an image volume: the whole image and
// an image_sub_path are readable and read-only, one view serves every container, image_ref is reported, sub paths
// that leave the image are refused, RemoveImage is refused while a container mounts the image, and the view is
// gone once its last user is (also after noded restarted and the view's mount was lost, as on a reboot). A pod
// with a user namespace gets its own ID-mapped view, so the image's files are root's in it as in its rootfs.
func TestImageVolumes(t *testing.T) {
	e := newPodEnvWithImages(t, 72, "", map[string]v1.Image{"it/vol:latest": volumeImage(t)})
	ref, err := e.n.Image.PullImage(e.ctx, &runtimeapi.ImageSpec{Image: "it/vol"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	imgSt, err := e.n.Image.ImageStatus(e.ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || imgSt.GetImage() == nil {
		t.Fatalf("ImageStatus: %v %v", imgSt, err)
	}
	wantRef := imgSt.GetImage().GetId()
	if d := imgSt.GetImage().GetRepoDigests(); len(d) > 0 {
		wantRef = d[0]
	}
	viewDir := filepath.Join(e.n.State, "image-volumes", strings.TrimPrefix(imgSt.GetImage().GetId(), "sha256:"))
	podID, podCfg := e.newPod(t, "imgvol")

	// As kubelet sends it: the image_ref of PullImage, read-only.
	volumes := func(c *runtimeapi.ContainerConfig) {
		c.Mounts = []*runtimeapi.Mount{
			{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: ref}, Readonly: true},
			{ContainerPath: "/sub", Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "data/sub", Readonly: true},
			{ContainerPath: "/via-link", Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: "inner", Readonly: true},
		}
	}
	c1 := e.runContainer(t, podID, podCfg, "vol1", volumes, "sleep", "3600")
	c2 := e.runContainer(t, podID, podCfg, "vol2", volumes, "sleep", "3600")
	for _, id := range []string{c1, c2} {
		got := e.exec(t, id, "sh", "-c", "cat /vol/data/hello.txt /vol/data/second.txt /sub/inner.txt /via-link/inner.txt; "+
			"touch /vol/new 2>/dev/null || echo vol-ro; touch /sub/new 2>/dev/null || echo sub-ro")
		if want := "hello-volume\nsecond-layer\ninner\ninner\nvol-ro\nsub-ro\n"; got != want {
			t.Errorf("%s sees %q, want %q", id, got, want)
		}
	}
	if n := countMounts(viewDir); n != 1 {
		t.Errorf("%d mounts at the view %s for two containers, want 1 shared", n, viewDir)
	}
	st, err := e.n.Runtime.ContainerStatus(e.ctx, c1, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.GetStatus().GetMounts() {
		if m.GetImage().GetImageRef() != wantRef {
			t.Errorf("ContainerStatus mount %s: image_ref %q, want %q", m.GetContainerPath(), m.GetImage().GetImageRef(), wantRef)
		}
	}

	// In a pod with a user namespace the image's files are root's, as in the rootfs, and the view is the same one.
	usernsCfg := e.podConfig(t, "imgvol-userns")
	usernsCfg.Linux.SecurityContext.NamespaceOptions.UsernsOptions = usernsOptions(0, usernsHostID, 65536)
	usernsPod := e.runPod(t, usernsCfg)
	t.Cleanup(func() { _ = e.n.Runtime.RemovePodSandbox(e.ctx, usernsPod) })
	code, out := e.output(t, usernsPod, usernsCfg, "vol-userns", volumes, "sh", "-c",
		"stat -c %u:%g /vol/data/hello.txt; cat /sub/inner.txt; touch /vol/new 2>/dev/null || echo ro")
	if code != 0 || out != "0:0\ninner\nro\n" {
		t.Errorf("image volume in a user namespace: exit %d, %q", code, out)
	}
	if n := countMounts(viewDir + "@" + usernsPod); n != 1 {
		t.Errorf("%d ID-mapped views for the user namespace pod, want 1", n)
	}
	if err := e.n.Runtime.StopPodSandbox(e.ctx, usernsPod); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Runtime.RemovePodSandbox(e.ctx, usernsPod); err != nil {
		t.Fatal(err)
	}
	if n, m := countMounts(viewDir+"@"+usernsPod), countMounts(viewDir); n != 0 || m != 1 {
		t.Errorf("after the user namespace pod: %d ID-mapped views left, %d shared views (want 0, 1)", n, m)
	}

	// Sub paths out of the image, or missing: refused, and nothing is left of the attempt.
	before, _ := e.n.Runtime.ListContainers(e.ctx, nil)
	for _, tc := range []struct {
		sub  string
		code codes.Code
	}{
		{"../etc", codes.InvalidArgument},
		{"/etc", codes.InvalidArgument},
		{"escape", codes.InvalidArgument},
		{"abs", codes.InvalidArgument},
		{"data/missing", codes.NotFound},
	} {
		cfg := &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "bad-sub"},
			Image:    &runtimeapi.ImageSpec{Image: "busybox"},
			Command:  []string{"true"},
			Mounts:   []*runtimeapi.Mount{{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: ref}, ImageSubPath: tc.sub, Readonly: true}},
		}
		if _, err := e.n.Runtime.CreateContainer(e.ctx, podID, cfg, podCfg); status.Code(err) != tc.code {
			t.Errorf("image_sub_path %q: %v, want %v", tc.sub, err, tc.code)
		}
	}
	if after, _ := e.n.Runtime.ListContainers(e.ctx, nil); len(after) != len(before) {
		t.Errorf("refused creations left containers: %d before, %d after", len(before), len(after))
	}

	// The image stays while mounted.
	err = e.n.Image.RemoveImage(e.ctx, &runtimeapi.ImageSpec{Image: ref})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), c1) {
		t.Errorf("RemoveImage of a mounted image: %v, want FailedPrecondition naming %s", err, c1)
	}
	if s, err := e.n.Image.ImageStatus(e.ctx, &runtimeapi.ImageSpec{Image: ref}, false); err != nil || s.GetImage() == nil {
		t.Errorf("image gone after a refused RemoveImage: %v %v", s, err)
	}

	// Item 12 on this host: CRIU cannot checkpoint, and the error says so.
	err = e.n.Runtime.CheckpointContainer(e.ctx,
		&runtimeapi.CheckpointContainerRequest{ContainerId: c1, Location: filepath.Join(t.TempDir(), "c1.tar")})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(strings.ToLower(err.Error()), "criu") {
		t.Errorf("CheckpointContainer: %v, want FailedPrecondition naming CRIU", err)
	}

	// One user gone: the view stays for the other.
	if err := e.n.Runtime.StopContainer(e.ctx, c1, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.n.Runtime.RemoveContainer(e.ctx, c1); err != nil {
		t.Fatal(err)
	}
	if n := countMounts(viewDir); n != 1 {
		t.Errorf("%d mounts at the view while c2 uses it, want 1", n)
	}
	// A restart that loses the view's mount (as a reboot loses /run): a new container mounts it again.
	e.n.Stop()
	if err := unix.Unmount(viewDir, 0); err != nil {
		t.Fatalf("unmount the view: %v", err)
	}
	e.n.Respawn()
	c3 := e.runContainer(t, podID, podCfg, "vol3", volumes, "sleep", "3600")
	if got := e.exec(t, c3, "cat", "/vol/data/hello.txt"); got != "hello-volume\n" {
		t.Errorf("after a restart: %q", got)
	}
	for _, id := range []string{c2, c3} {
		if err := e.n.Runtime.StopContainer(e.ctx, id, 0); err != nil {
			t.Fatal(err)
		}
		if err := e.n.Runtime.RemoveContainer(e.ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if n := countMounts(viewDir); n != 0 {
		t.Errorf("%d mounts at the view after its last user was removed", n)
	}
	if err := e.n.Image.RemoveImage(e.ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		t.Errorf("RemoveImage once unused: %v", err)
	}
	e.removeAllPods(t)
	e.assertNoLeaksFull(t)
	for _, m := range framework.MountsBelow(e.n.Dir) {
		if strings.Contains(m, "image-volumes") {
			t.Errorf("image volume mount left: %s", m)
		}
	}
}

func countMounts(dir string) int {
	n := 0
	for _, m := range framework.MountsBelow(filepath.Dir(dir)) {
		if m == dir {
			n++
		}
	}
	return n
}

// TestImageVolumeRolledBackAfterACrash kills noded while it creates a container with an image volume, after the
// view is mounted and before the runtime is called: once noded is back, the interrupted creation is rolled back
// with its view (no mount, the image removable), and the next creation mounts the view again.
func TestImageVolumeRolledBackAfterACrash(t *testing.T) {
	f := newFaultEnv(t, 73, "", map[string]v1.Image{"it/vol:latest": volumeImage(t)})
	ref, err := f.n.Image.PullImage(f.ctx, &runtimeapi.ImageSpec{Image: "it/vol"}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	viewDir := filepath.Join(f.n.State, "image-volumes", strings.TrimPrefix(ref, "sha256:"))
	podID, podCfg := f.newPod(t, "imgvol-crash")
	cfg := f.sleeperConfig(podCfg)
	cfg.Mounts = []*runtimeapi.Mount{{ContainerPath: "/vol", Image: &runtimeapi.ImageSpec{Image: ref}, Readonly: true}}

	f.arm(t, faultinject.ContainerBundle)
	if _, err := f.n.Runtime.CreateContainer(f.ctx, podID, cfg, podCfg); err == nil {
		t.Fatal("CreateContainer succeeded through the kill point")
	}
	f.crashAndRestart(t, faultinject.ContainerBundle)
	if cs, err := f.n.Runtime.ListContainers(f.ctx, nil); err != nil || len(cs) != 0 {
		t.Fatalf("containers after the rollback: %v %v", cs, err)
	}
	if n := countMounts(viewDir); n != 0 {
		t.Errorf("%d mounts at the view after the interrupted creation was rolled back", n)
	}

	id, err := f.n.Runtime.CreateContainer(f.ctx, podID, cfg, podCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.n.Runtime.StartContainer(f.ctx, id); err != nil {
		t.Fatal(err)
	}
	if got := f.exec(t, id, "cat", "/vol/data/hello.txt"); got != "hello-volume\n" {
		t.Errorf("after the crash: %q", got)
	}
	f.removeAllPods(t)
	if n := countMounts(viewDir); n != 0 {
		t.Errorf("%d mounts at the view after its last user was removed", n)
	}
	if err := f.n.Image.RemoveImage(f.ctx, &runtimeapi.ImageSpec{Image: ref}); err != nil {
		t.Errorf("RemoveImage once unused: %v", err)
	}
	f.assertNoLeaksFull(t)
}
