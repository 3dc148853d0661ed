package integration

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// deepImage is busybox plus tiny layers, one holding files of which the top layer deletes one (a whiteout)
// and empties a directory (an opaque dir), for 128 layers in all.
// It returns the image and the number of /layers/NNNN files.
func deepImage(t *testing.T) (v1.Image, int) {
	t.Helper()
	bb := framework.Busybox(t)
	bbLayers, err := bb.Layers()
	if err != nil {
		t.Fatal(err)
	}
	wh := testimage.NewFS()
	wh.WriteFile("/wh/keep", []byte("keep\n"), 0o644)
	wh.WriteFile("/wh/gone", []byte("gone\n"), 0o644)
	wh.WriteFile("/wh/opq/old", []byte("old\n"), 0o644)
	withWh, err := testimage.Derive(bb, wh, nil)
	if err != nil {
		t.Fatal(err)
	}
	many := 128 - len(bbLayers) - 2
	img, err := testimage.ManyLayers(withWh, many, testimage.Gzip, testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	top := testimage.NewFS()
	top.Whiteout("/wh/gone")
	top.Opaque("/wh/opq")
	top.WriteFile("/wh/opq/new", []byte("new\n"), 0o644)
	top.WriteFile("/top", []byte("top layer\n"), 0o644)
	img, err = testimage.Derive(img, top, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ls, err := img.Layers(); err != nil || len(ls) != 128 {
		t.Fatalf("deep image has %d layers (%v), want 128", len(ls), err)
	}
	return img, many
}

// TestPull128LayerImageAndRun pulls a 128-layer image straight from a plain-HTTP registry host (plain_http in
// the host's config, no mirror) and runs a container from it: the overlay mount of 128 lower dirs works, and
// files of the bottom and top layers and the whiteout and opaque dir of the top layer show as they should.
func TestPull128LayerImageAndRun(t *testing.T) {
	framework.RequireRoot(t)
	img, many := deepImage(t)
	host := framework.Registry(t, map[string]v1.Image{"noded/deep:128": img})
	network := framework.NewNetwork(t, 60)
	n := framework.Start(t, framework.Options{
		CNIConfDir: network.ConfDir,
		Config:     fmt.Sprintf("[registry.hosts.%q]\nplain_http = true\n", host),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ref := host + "/noded/deep:128"
	imgRef, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil)
	if err != nil {
		t.Fatalf("PullImage: %v", err)
	}
	st, err := n.Image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
	if err != nil || st.GetImage() == nil || st.Image.Id != imgRef {
		t.Fatalf("ImageStatus = %+v, %v; want image %s", st.GetImage(), err, imgRef)
	}

	e := &podEnv{n: n, net: network, ctx: ctx}
	podCfg := e.podConfig(t, "deep")
	podID := e.runPod(t, podCfg)
	t.Cleanup(func() {
		_ = n.Runtime.StopPodSandbox(context.Background(), podID)
		_ = n.Runtime.RemovePodSandbox(context.Background(), podID)
	})
	ccfg := &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "deep"},
		Image:    &runtimeapi.ImageSpec{Image: ref},
		Command: []string{"sh", "-c", fmt.Sprintf(`cat /layers/0000 /layers/%04d /top /wh/keep /wh/opq/new; `, many-1) +
			`for f in /wh/gone /wh/opq/old; do test -e $f && echo "visible $f"; done; echo files: $(ls /wh) $(ls /wh/opq); echo done`},
		LogPath: "deep.log",
		Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
			NamespaceOptions: podCfg.GetLinux().GetSecurityContext().GetNamespaceOptions(),
		}},
	}
	cid, err := n.Runtime.CreateContainer(ctx, podID, ccfg, podCfg)
	if err != nil {
		t.Fatalf("CreateContainer: %v", err)
	}
	if err := n.Runtime.StartContainer(ctx, cid); err != nil {
		t.Fatalf("StartContainer: %v", err)
	}
	cs := e.waitExited(t, cid)
	logData, err := os.ReadFile(cs.LogPath)
	if err != nil {
		t.Fatalf("read log: %v", err)
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(string(logData)), "\n") {
		// CRI log format: time stream tag message.
		if f := strings.SplitN(line, " ", 4); len(f) == 4 {
			out = append(out, f[3])
		}
	}
	want := []string{"layer 0", fmt.Sprintf("layer %d", many-1), "top layer", "keep", "new", "files: keep opq new", "done"}
	if cs.ExitCode != 0 || strings.Join(out, "\n") != strings.Join(want, "\n") {
		t.Fatalf("exit code %d, output:\n%s\nwant:\n%s", cs.ExitCode, strings.Join(out, "\n"), strings.Join(want, "\n"))
	}
}
