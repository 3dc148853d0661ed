package oci

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FuzzBuild feeds arbitrary container and pod configs (mounts, devices, security contexts with capabilities,
// seccomp and AppArmor profiles, resources, users, sysctls, annotations) to the spec builder: it returns a spec
// or a clean error, never a panic, and an accepted spec mounts only at absolute, clean destinations and keeps
// the container's root.
func FuzzBuild(f *testing.F) {
	seeds := []*runtimeapi.ContainerConfig{
		{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"},
			Command: []string{"sh"}, Args: []string{"-c", "true"}, WorkingDir: "/w",
			Envs: []*runtimeapi.KeyValue{{Key: "A", Value: []byte("b")}},
			Mounts: []*runtimeapi.Mount{
				{ContainerPath: "/data", HostPath: "/tmp", Readonly: true},
				{ContainerPath: "/p", HostPath: "/", Propagation: runtimeapi.MountPropagation_PROPAGATION_HOST_TO_CONTAINER},
				{ContainerPath: "../escape", HostPath: "/etc"},
			},
			Devices: []*runtimeapi.Device{{ContainerPath: "/dev/xnull", HostPath: "/dev/null", Permissions: "rwm"}},
			Linux: &runtimeapi.LinuxContainerConfig{
				Resources: &runtimeapi.LinuxContainerResources{CpuShares: 512, MemoryLimitInBytes: 1 << 30, OomScoreAdj: 1000},
				SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
					Capabilities:       &runtimeapi.Capability{AddCapabilities: []string{"NET_ADMIN"}, DropCapabilities: []string{"ALL"}},
					RunAsUser:          &runtimeapi.Int64Value{Value: 1000},
					Seccomp:            &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault},
					MaskedPaths:        []string{"/proc/kcore"},
					ReadonlyPaths:      []string{"/proc/sys"},
					NoNewPrivs:         true,
					SupplementalGroups: []int64{3000},
				},
			},
		},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "p"}, Image: &runtimeapi.ImageSpec{Image: "x"},
			Linux: &runtimeapi.LinuxContainerConfig{SecurityContext: &runtimeapi.LinuxContainerSecurityContext{
				Privileged: true, RunAsUsername: "app",
				Seccomp:  &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "/dev/zero"},
				Apparmor: &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined},
			}}},
	}
	pod, err := proto.Marshal(&runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "pod", Namespace: "ns", Uid: "u"}, Hostname: "h",
		Linux: &runtimeapi.LinuxPodSandboxConfig{Sysctls: map[string]string{"net.ipv4.ip_forward": "1"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := proto.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, pod)
	}
	base := testParams(f)
	f.Fuzz(func(t *testing.T, ctrData, podData []byte) {
		p := base
		p.Config, p.SandboxConfig = &runtimeapi.ContainerConfig{}, &runtimeapi.PodSandboxConfig{}
		if proto.Unmarshal(ctrData, p.Config) != nil || proto.Unmarshal(podData, p.SandboxConfig) != nil {
			return
		}
		s, err := Build(p)
		if err != nil {
			return
		}
		if s.Root == nil || s.Root.Path != p.RootfsPath {
			t.Fatalf("spec root %v, want %s", s.Root, p.RootfsPath)
		}
		for _, m := range s.Mounts {
			if !filepath.IsAbs(m.Destination) || filepath.Clean(m.Destination) != m.Destination || strings.ContainsRune(m.Destination, 0) {
				t.Fatalf("accepted mount destination %q", m.Destination)
			}
		}
	})
}
