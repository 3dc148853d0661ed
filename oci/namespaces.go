package oci

import (
	"path/filepath"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

var namespaceOrder = []specs.LinuxNamespaceType{
	specs.UserNamespace, specs.PIDNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace,
	specs.MountNamespace, specs.CgroupNamespace, specs.TimeNamespace,
}

func namespaces(p Params, s *specs.Spec, privileged bool) error {
	ns := map[specs.LinuxNamespaceType]string{}
	for t, path := range p.Namespaces {
		if !slices.Contains(namespaceOrder, t) {
			return errdefs.InvalidArgument("unknown namespace type %q", t)
		}
		if path != "" && !filepath.IsAbs(path) {
			return errdefs.InvalidArgument("%s namespace path %q must be absolute", t, path)
		}
		ns[t] = path
	}
	if path := ns[specs.MountNamespace]; path != "" {
		return errdefs.InvalidArgument("containers always get a new mount namespace, not %q", path)
	}
	ns[specs.MountNamespace] = ""
	if _, ok := ns[specs.CgroupNamespace]; !ok && p.Runtime.CgroupV2 {
		ns[specs.CgroupNamespace] = ""
	}

	userns := p.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	if userns == nil {
		userns = p.SandboxConfig.GetLinux().GetSecurityContext().GetNamespaceOptions().GetUsernsOptions()
	}
	switch userns.GetMode() {
	case runtimeapi.NamespaceMode_NODE:
		if _, ok := ns[specs.UserNamespace]; ok {
			return errdefs.InvalidArgument("userns_options mode NODE but a user namespace was given")
		}
	case runtimeapi.NamespaceMode_POD:
		if userns == nil {
			break // no user namespace options at all: host user namespace
		}
		if !p.Runtime.UserNamespaces {
			return errdefs.InvalidArgument("userns_options: user namespaces are not supported by the runtime")
		}
		if privileged {
			return errdefs.InvalidArgument("userns_options: privileged containers cannot use a user namespace")
		}
		uids, err := idMappings("userns_options.uids", userns.GetUids())
		if err != nil {
			return err
		}
		gids, err := idMappings("userns_options.gids", userns.GetGids())
		if err != nil {
			return err
		}
		if len(uids) == 0 || len(gids) == 0 {
			return errdefs.InvalidArgument("userns_options mode POD needs uids and gids mappings")
		}
		// A user namespace joined by path is given without mappings: the runtime reads them from the namespace
		// (runc refuses both unless they match, and warns even then).
		if ns[specs.UserNamespace] == "" {
			ns[specs.UserNamespace] = ""
			s.Linux.UIDMappings, s.Linux.GIDMappings = uids, gids
		}
	default:
		return errdefs.InvalidArgument("userns_options: unsupported mode %v", userns.GetMode())
	}
	if path, ok := ns[specs.UserNamespace]; ok && path == "" && len(s.Linux.UIDMappings) == 0 {
		return errdefs.InvalidArgument("a user namespace needs userns_options with mode POD and id mappings")
	}

	for _, t := range namespaceOrder {
		if path, ok := ns[t]; ok {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: t, Path: path})
		}
	}
	return nil
}

func idMappings(field string, in []*runtimeapi.IDMapping) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	for i, m := range in {
		if m.GetLength() == 0 {
			return nil, errdefs.InvalidArgument("%s[%d]: length must be > 0", field, i)
		}
		if uint64(m.GetHostId())+uint64(m.GetLength()) > 1<<32 || uint64(m.GetContainerId())+uint64(m.GetLength()) > 1<<32 {
			return nil, errdefs.InvalidArgument("%s[%d]: range overflows 32 bits", field, i)
		}
		out = append(out, specs.LinuxIDMapping{ContainerID: m.GetContainerId(), HostID: m.GetHostId(), Size: m.GetLength()})
	}
	return out, nil
}
