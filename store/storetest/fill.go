package storetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
)

// Fill adds n ready pod sandboxes, each with one running container, labelled and annotated the way kubelet
// labels its pods and containers (for tests and benchmarks of the list paths). IDs are 64 hex digits (ID("pod",
// i) and ID("ctr", i)); sandbox i has cgroup parent /noded-test/pod<i>, its container's cgroup path is below the
// pod's and its snapshot key is "snap-<container ID>". Records are created in order, one nanosecond apart.
func Fill(t testing.TB, st *store.Store, n int) (sandboxes []*store.Sandbox, containers []*store.Container) {
	t.Helper()
	for i := 0; i < n; i++ {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		name, ns := fmt.Sprintf("web-%d", i), "default"
		sb := &store.Sandbox{
			ID: ID("pod", i), Name: fmt.Sprintf("%s_%s_%s_0", name, ns, uid),
			Config: &runtimeapi.PodSandboxConfig{
				Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: ns, Uid: uid},
				Labels: map[string]string{"app": "web", "pod-template-hash": "5d8f7c9b6",
					"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid},
				Annotations: map[string]string{"kubernetes.io/config.seen": "2026-12-02T00:00:00.000000000Z",
					"kubernetes.io/config.source": "api"},
				Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: fmt.Sprintf("/noded-test/pod%d", i)},
			},
			State: store.SandboxReady, CreatedAt: int64(2 * i), CgroupParent: fmt.Sprintf("/noded-test/pod%d", i),
			Namespaces: map[string]string{"net": "/run/noded/ns/" + uid + "/net"}, IPs: []string{"10.0.0.1"},
		}
		if err := st.AddSandbox(sb); err != nil {
			t.Fatal(err)
		}
		cid := ID("ctr", i)
		c := &store.Container{
			ID: cid, SandboxID: sb.ID, Name: "app_" + sb.Name + "_0",
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
				Image:    &runtimeapi.ImageSpec{Image: "docker.io/library/busybox:latest"},
				Labels: map[string]string{"io.kubernetes.container.name": "app", "io.kubernetes.pod.name": name,
					"io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid},
				Annotations: map[string]string{"io.kubernetes.container.hash": "a1b2c3d4",
					"io.kubernetes.container.restartCount":             "0",
					"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
					"io.kubernetes.container.terminationMessagePolicy": "File",
					"io.kubernetes.pod.terminationGracePeriod":         "30"},
			},
			State: store.ContainerRunning, CreatedAt: int64(2*i + 1), StartedAt: int64(2*i + 1),
			ImageName: "docker.io/library/busybox:latest", ImageID: "sha256:" + fmt.Sprintf("%064d", 1),
			ImageRef:    "docker.io/library/busybox@sha256:" + fmt.Sprintf("%064d", 2),
			CgroupsPath: sb.CgroupParent + "/" + cid, SnapshotKey: "snap-" + cid,
		}
		if err := st.AddContainer(c); err != nil {
			t.Fatal(err)
		}
		sandboxes, containers = append(sandboxes, sb), append(containers, c)
	}
	return sandboxes, containers
}

// ID is a record ID of 64 hex digits derived from kind and i.
func ID(kind string, i int) string {
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s%d", kind, i)))
	return hex.EncodeToString(sum[:])
}
