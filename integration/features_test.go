package integration

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
)

// statusFeatures returns Status(verbose): the default handler's features, the runtime features and the
// verbose "features" value decoded.
func statusFeatures(t *testing.T, n *framework.Noded) (*runtimeapi.RuntimeHandlerFeatures, *runtimeapi.RuntimeFeatures, map[string]any) {
	t.Helper()
	st, err := n.Runtime.Status(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	var def *runtimeapi.RuntimeHandlerFeatures
	for _, h := range st.GetRuntimeHandlers() {
		if h.Name == "" {
			def = h.GetFeatures()
		}
	}
	if def == nil {
		t.Fatalf("no default handler in Status: %v", st.GetRuntimeHandlers())
	}
	var info map[string]any
	if err := json.Unmarshal([]byte(st.GetInfo()["features"]), &info); err != nil {
		t.Fatalf("Status verbose features %q: %v", st.GetInfo()["features"], err)
	}
	return def, st.GetFeatures(), info
}

// TestStatusAdvertisesProbedFeatures checks what Status advertises on this host (kernel >= 5.19, runc 1.5 with
// rro, user namespaces and ID-mapped mounts, noded's root on a filesystem with ID-mapped mounts): mount_options,
// recursive read-only and user namespaces, with the host's probe in the verbose info.
func TestStatusAdvertisesProbedFeatures(t *testing.T) {
	n := framework.Start(t, framework.Options{})
	def, rf, info := statusFeatures(t, n)
	if !rf.GetMountOptions() || !rf.GetSupplementalGroupsPolicy() || rf.GetUserNamespacesHostNetwork() {
		t.Errorf("runtime features = %v, want mount_options and supplemental_groups_policy, no user_namespaces_host_network", rf)
	}
	if !def.GetRecursiveReadOnlyMounts() || !def.GetUserNamespaces() {
		t.Errorf("default handler features = %v, want recursive read-only and user namespaces on this host", def)
	}
	host, _ := info["host"].(map[string]any)
	if host["kernel"] == "" || host["idmappedMounts"] != true || host["recursiveReadOnly"] != true {
		t.Errorf("verbose host features = %v", host)
	}
	if h, _ := info["handlers"].(map[string]any)["runc"].(map[string]any); h["userNamespaces"] != true {
		t.Errorf("verbose runc features = %v", h)
	}
}

// TestStatusUserNamespacesOffWithoutIDMappedMounts puts noded's root (where the snapshots live) on a ramfs,
// which has no ID-mapped mounts: runc still says it can do user namespaces, but the handler must not advertise
// them, the verbose info must say why, and a pod asking for a user namespace fails with FailedPrecondition.
func TestStatusUserNamespacesOffWithoutIDMappedMounts(t *testing.T) {
	framework.RequireRoot(t)
	root, err := os.MkdirTemp("/var/tmp", "noded-it-ramfs-")
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("noded-it-ramfs", root, "ramfs", 0, "mode=0711"); err != nil {
		_ = os.Remove(root)
		t.Fatalf("mount ramfs: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(root, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", root, err)
		}
		_ = os.Remove(root)
	})
	n := framework.Start(t, framework.Options{ExtraArgs: []string{"--root", filepath.Join(root, "r")}})
	def, rf, info := statusFeatures(t, n)
	if def.GetUserNamespaces() {
		t.Error("default handler advertises user namespaces with its snapshots on a filesystem without ID-mapped mounts")
	}
	if !def.GetRecursiveReadOnlyMounts() || !rf.GetMountOptions() {
		t.Errorf("features = %v %v, want recursive read-only and mount options still on", def, rf)
	}
	h, _ := info["handlers"].(map[string]any)["runc"].(map[string]any)
	reasons, _ := h["reasons"].(map[string]any)
	if why, _ := reasons["userNamespaces"].(string); !strings.Contains(why, "ID-mapped") {
		t.Errorf("verbose runc features = %v, want a reason naming ID-mapped mounts", h)
	}
	_, err = n.Runtime.RunPodSandbox(context.Background(), &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "userns", Namespace: "it", Uid: "userns-uid"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{UsernsOptions: &runtimeapi.UserNamespace{
				Mode: runtimeapi.NamespaceMode_POD,
				Uids: []*runtimeapi.IDMapping{{HostId: 1 << 20, Length: 65536}},
				Gids: []*runtimeapi.IDMapping{{HostId: 1 << 20, Length: 65536}},
			}},
		}},
	}, "")
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "ID-mapped") {
		t.Errorf("RunPodSandbox with a user namespace = %v, want FailedPrecondition naming ID-mapped mounts", err)
	}
}
