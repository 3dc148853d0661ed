package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// benchList creates listContainers containers spread over listPods pods, starts listRunning of them, and
// times ListContainers, ListPodSandbox and ListContainerStats.
func (c *client) benchList(ctx context.Context, res *Results) error {
	o := c.o
	nPods := max(o.listPods, 1)
	pods := make([]pod, nPods)
	errs := make([]error, nPods)
	parallel(nPods, 8, func(i int) {
		cfg := c.podConfig("list")
		pods[i].cfg, pods[i].name = cfg, cfg.Metadata.Name
		pods[i].id, errs[i] = c.runPod(ctx, cfg)
	})
	defer parallel(nPods, 8, func(i int) {
		if pods[i].id != "" {
			_ = c.removeSandbox(ctx, pods[i].id)
			c.forgetPodDirs(pods[i].name)
		}
	})
	if err := errors.Join(errs...); err != nil {
		return err
	}
	t0 := time.Now()
	ids := make([]string, o.listContainers)
	cerrs := make([]error, o.listContainers)
	parallel(o.listContainers, 8, func(i int) {
		p := pods[i%nPods]
		ids[i], cerrs[i] = c.rt.CreateContainer(ctx, p.id, c.containerConfig(fmt.Sprintf("c%d", i)), p.cfg)
		if cerrs[i] == nil && i < o.listRunning {
			cerrs[i] = c.rt.StartContainer(ctx, ids[i])
		}
	})
	if err := errors.Join(cerrs...); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: %d containers in %d pods made in %s\n", o.listContainers, nPods, time.Since(t0).Round(time.Millisecond))
	n := fmt.Sprintf("%d", o.listContainers)
	if err := timeCalls(o.listIters, res, "ListContainers "+n, func() error {
		_, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{})
		return err
	}); err != nil {
		return err
	}
	if err := timeCalls(o.listIters, res, "ListContainers label "+n, func() error {
		_, err := c.rt.ListContainers(ctx, &runtimeapi.ContainerFilter{PodSandboxId: pods[0].id,
			State: &runtimeapi.ContainerStateValue{State: runtimeapi.ContainerState_CONTAINER_RUNNING}})
		return err
	}); err != nil {
		return err
	}
	if err := timeCalls(o.listIters, res, "ListPodSandbox", func() error {
		_, err := c.rt.ListPodSandbox(ctx, &runtimeapi.PodSandboxFilter{})
		return err
	}); err != nil {
		return err
	}
	return timeCalls(max(o.listIters/5, 3), res, "ListContainerStats "+n, func() error {
		_, err := c.rt.ListContainerStats(ctx, &runtimeapi.ContainerStatsFilter{})
		return err
	})
}

func timeCalls(n int, res *Results, what string, call func() error) error {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		t0 := time.Now()
		if err := call(); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ds = append(ds, time.Since(t0))
	}
	res.add(what+" p50", ms(percentile(ds, 50)), "ms", true)
	res.add(what+" p99", ms(percentile(ds, 99)), "ms", true)
	return nil
}

// benchPull removes the large image and pulls it again, pullRounds times; it reports the median time, the
// throughput in compressed MB/s and the mean time per layer (the CRI shows no per-layer timing).
func (c *client) benchPull(ctx context.Context, res *Results) error {
	layers, size, err := imageSize(ctx, c.o.mirror, c.o.largeImage)
	if err != nil {
		return fmt.Errorf("read the large image's manifest: %w", err)
	}
	var secs []float64
	for r := 0; r < c.o.pullRounds; r++ {
		spec := &runtimeapi.ImageSpec{Image: c.o.largeImage}
		if err := c.img.RemoveImage(ctx, spec); err != nil && !strings.Contains(err.Error(), "not found") {
			return fmt.Errorf("RemoveImage: %w", err)
		}
		time.Sleep(time.Second) // containerd collects the content of a removed image asynchronously
		t0 := time.Now()
		if _, err := c.img.PullImage(ctx, spec, nil, nil); err != nil {
			return fmt.Errorf("PullImage %s: %w", c.o.largeImage, err)
		}
		secs = append(secs, time.Since(t0).Seconds())
	}
	_ = c.img.RemoveImage(ctx, &runtimeapi.ImageSpec{Image: c.o.largeImage})
	s := median(secs)
	res.add(fmt.Sprintf("pull %d layers %.0f MB", layers, float64(size)/1e6), s, "s", true)
	res.add("pull throughput", float64(size)/1e6/s, "MB/s", false)
	res.add("pull time per layer (mean)", s*1000/float64(layers), "ms", true)
	return nil
}

// imageSize reads the image's manifest from the registry: the number of layers and their compressed size.
func imageSize(ctx context.Context, mirror, ref string) (int, int64, error) {
	img, err := mirrorImage(ctx, mirror, ref)
	if err != nil {
		return 0, 0, err
	}
	ls, err := img.Layers()
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, l := range ls {
		sz, err := l.Size()
		if err != nil {
			return 0, 0, err
		}
		total += sz
	}
	return len(ls), total, nil
}

// mirrorImage reads an image from the registry; a docker.io/ reference is read from the plain-HTTP mirror.
func mirrorImage(ctx context.Context, mirror, ref string) (v1.Image, error) {
	if rest, ok := strings.CutPrefix(ref, "docker.io/"); ok {
		ref = mirror + "/" + rest
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return nil, err
	}
	return remote.Image(r, remote.WithContext(ctx))
}
