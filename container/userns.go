package container

import (
	"context"
	"os"
	"path/filepath"
	"slices"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/features"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// CheckUserns returns a FailedPrecondition error when the handler's runtime cannot run containers in a user
// namespace.
func (m *Manager) CheckUserns(ctx context.Context, handler string) error {
	f, err := m.Features(ctx, handler)
	if err != nil {
		return err
	}
	if !f.UserNamespaces {
		why := ""
		if rt, err := m.runtime(handler); err == nil && m.cfg.HostFeatures != nil {
			if rf, err := rt.Features(ctx); err == nil {
				why = ": " + HandlerFeatures(*m.cfg.HostFeatures, rf).Reasons[features.FeatureUserNamespaces]
			}
		}
		return errdefs.FailedPrecondition("runtime handler %q does not support user namespaces%s", handler, why)
	}
	return searchableByOthers(m.bundlesDir)
}

// searchableByOthers checks that dir and every directory above it can be searched by any user: the OCI runtime
// resolves a container's rootfs as the root of the container's user namespace, an unprivileged host user.
func searchableByOthers(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return errdefs.FailedPrecondition("user namespaces need %s to be searchable by other users (mode %#o lacks o+x): "+
				"containers in a user namespace could not reach their rootfs", d, fi.Mode().Perm())
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// podUserns returns the sandbox's pinned user namespace and the ID mapping of its rootfs, or ok false for a pod
// in the host's user namespace.
func podUserns(sb *store.Sandbox) (snapshotter.IDMapping, bool) {
	path := sb.Namespaces[string(nsutil.User)]
	uids, gids, ok := sandbox.PodUserns(sb.Config)
	if path == "" || !ok {
		return snapshotter.IDMapping{}, false
	}
	return snapshotter.IDMapping{Userns: path, RootUID: hostIDOfRoot(uids), RootGID: hostIDOfRoot(gids)}, true
}

func hostIDOfRoot(maps []nsutil.IDMap) int {
	for _, m := range maps {
		if m.ContainerID == 0 {
			return int(m.HostID)
		}
	}
	return -1 // validation guarantees a mapping of ID 0
}

// checkContainerUserns checks that a container's user namespace request agrees with its pod's: containers of a
// pod with a user namespace run in it, with the pod's mappings; a pod without one has no user namespace to
// offer.
func checkContainerUserns(sb *store.Sandbox, cfg *runtimeapi.ContainerConfig) error {
	want := sb.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	got := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	_, podHas := podUserns(sb)
	if got == nil {
		return nil
	}
	switch {
	case got.GetMode() == runtimeapi.NamespaceMode_NODE && !podHas:
		return nil
	case got.GetMode() == runtimeapi.NamespaceMode_POD && podHas:
		same := func(a, b []*runtimeapi.IDMapping) bool {
			return slices.EqualFunc(a, b, func(x, y *runtimeapi.IDMapping) bool {
				return x.GetContainerId() == y.GetContainerId() && x.GetHostId() == y.GetHostId() && x.GetLength() == y.GetLength()
			})
		}
		if same(got.GetUids(), want.GetUids()) && same(got.GetGids(), want.GetGids()) {
			return nil
		}
		return errdefs.InvalidArgument("container user namespace mappings differ from the pod's")
	case podHas:
		return errdefs.InvalidArgument("the pod has a user namespace: its containers must use it (mode POD), not mode %v", got.GetMode())
	default:
		return errdefs.InvalidArgument("the pod has no user namespace: containers cannot ask for mode %v", got.GetMode())
	}
}
