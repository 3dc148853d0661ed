package container

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/store"
)

// FuzzValidateContainerConfig: CreateContainer's validation gives nil or an InvalidArgument for any request,
// never a panic, and the log file of an accepted config stays inside the pod's log directory (noded creates its
// directory).
func FuzzValidateContainerConfig(f *testing.F) {
	for _, cfg := range []*runtimeapi.ContainerConfig{
		{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}, LogPath: "c/0.log"},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "c"}, Image: &runtimeapi.ImageSpec{Image: "busybox"}, LogPath: "../../etc/x"},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "a/b"}, Image: &runtimeapi.ImageSpec{Image: "x"}, LogPath: "/abs"},
		{Metadata: &runtimeapi.ContainerMetadata{Name: "c", Attempt: 3}, Image: &runtimeapi.ImageSpec{Image: "x"}, LogPath: "a:b"},
	} {
		b, err := proto.Marshal(cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	const logDir = "/var/log/pods/ns_pod_uid"
	sb := &store.Sandbox{ID: "0123456789abcdef"}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := &runtimeapi.ContainerConfig{}
		if err := proto.Unmarshal(data, cfg); err != nil {
			return
		}
		if err := validateContainerConfig(cfg); err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("validation error of kind other than InvalidArgument: %v", err)
			}
			return
		}
		if lp := cfg.GetLogPath(); lp != "" {
			p := filepath.Join(logDir, lp)
			if p != logDir && !strings.HasPrefix(p, logDir+"/") {
				t.Fatalf("accepted log path %q resolves to %s, outside %s", lp, p, logDir)
			}
			if strings.Contains(p, ":") {
				t.Fatalf("accepted log path %q has a ':' (conmon's option syntax)", lp)
			}
		}
		if n := UniqueName(sb, cfg.GetMetadata()); strings.Count(n, "_") < 2 {
			t.Fatalf("unique name %q", n)
		}
	})
}
