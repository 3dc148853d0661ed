package framework

import (
	"context"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// PodEnv is a noded with a registry holding busybox as docker.io/library/busybox:latest (pulled) and a CNI
// network of the test's own, for tests that run pods.
type PodEnv struct {
	Noded   *Noded
	Network *Network
	// Ctx bounds the test's calls; it ends with the test.
	Ctx context.Context
}

// NewPodEnv starts a PodEnv on network index netIdx: o is completed with the network's CNI config dir and a
// mirror of docker.io at the registry (which also holds extra, by repository:tag), and every call of the test
// must finish within timeout.
func NewPodEnv(t testing.TB, netIdx int, o Options, extra map[string]v1.Image, timeout time.Duration) *PodEnv {
	t.Helper()
	RequireRoot(t)
	images := map[string]v1.Image{"library/busybox:latest": Busybox(t)}
	for k, v := range extra {
		images[k] = v
	}
	host := Registry(t, images)
	network := NewNetwork(t, netIdx)
	o.CNIConfDir = network.ConfDir
	o.Mirrors = map[string]string{"docker.io": "http://" + host}
	n := Start(t, o)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	if _, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: "busybox"}, nil, nil); err != nil {
		t.Fatalf("pull busybox: %v", err)
	}
	return &PodEnv{Noded: n, Network: network, Ctx: ctx}
}
