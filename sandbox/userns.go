package sandbox

import (
	"context"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/store"
)

// PodUserns returns the ID mappings of a pod that asks for its own user namespace (mode POD), or ok false for a
// pod in the host's user namespace. The config must have passed validation.
func PodUserns(cfg *runtimeapi.PodSandboxConfig) (uids, gids []nsutil.IDMap, ok bool) {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil || u.GetMode() != runtimeapi.NamespaceMode_POD { // POD is the enum's zero value
		return nil, nil, false
	}
	conv := func(in []*runtimeapi.IDMapping) []nsutil.IDMap {
		out := make([]nsutil.IDMap, len(in))
		for i, m := range in {
			out[i] = nsutil.IDMap{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()}
		}
		return out
	}
	return conv(u.GetUids()), conv(u.GetGids()), true
}

// checkUserns checks what a user namespace pod needs beyond its mappings (validateUserns): namespaces of its
// own (a user namespace cannot own the host's), mappings that fit in 32 bits, and a runtime handler that supports
// user namespaces.
func (m *Manager) checkUserns(ctx context.Context, cfg *runtimeapi.PodSandboxConfig, handler string) error {
	u := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if u == nil || u.GetMode() != runtimeapi.NamespaceMode_POD {
		return nil
	}
	ns := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	if ns.GetNetwork() == runtimeapi.NamespaceMode_NODE || ns.GetIpc() == runtimeapi.NamespaceMode_NODE ||
		ns.GetPid() == runtimeapi.NamespaceMode_NODE {
		return errdefs.InvalidArgument("a pod with its own user namespace cannot use the host's network, IPC or PID namespace")
	}
	if cfg.GetLinux().GetSecurityContext().GetPrivileged() {
		return errdefs.InvalidArgument("a privileged pod cannot have its own user namespace")
	}
	for what, maps := range map[string][]*runtimeapi.IDMapping{"uid": u.GetUids(), "gid": u.GetGids()} {
		for _, mp := range maps {
			if uint64(mp.GetHostId())+uint64(mp.GetLength()) > 1<<32 {
				return errdefs.InvalidArgument("user namespace %s mapping %d+%d overflows 32 bits", what, mp.GetHostId(), mp.GetLength())
			}
		}
	}
	if m.cfg.CheckUserns != nil {
		return m.cfg.CheckUserns(ctx, handler)
	}
	return nil
}

// pinNamespaces creates and pins the sandbox's namespaces of the given types: owned by a new user namespace,
// pinned too, when the pod has one, else by the host's.
func (m *Manager) pinNamespaces(ctx context.Context, sb *store.Sandbox, types []nsutil.Type) (map[nsutil.Type]string, error) {
	dir := filepath.Join(m.nsDir, sb.ID)
	if uids, gids, ok := PodUserns(sb.Config); ok {
		return m.host.Pin(ctx, dir, types, uids, gids)
	}
	return m.host.Pin(ctx, dir, types, nil, nil)
}
