// Package oci builds the OCI runtime spec (a runc bundle's config.json) for a CRI container from the CRI
// request, the pod sandbox config and the image config, following the behaviour of kubelet's CRI runtimes.
package oci

import (
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci/signal"
	"github.com/noded/noded/oci/user"
)

// Annotations noded adds to every container spec.
const (
	AnnotationContainerType    = "io.noded.container-type" // "container"
	AnnotationSandboxID        = "io.noded.sandbox-id"
	AnnotationSandboxName      = "io.noded.sandbox-name"
	AnnotationSandboxNamespace = "io.noded.sandbox-namespace"
	AnnotationSandboxUID       = "io.noded.sandbox-uid"
	AnnotationContainerName    = "io.noded.container-name"
	AnnotationImageName        = "io.noded.image-name"
)

// DefaultRlimitNofile is the RLIMIT_NOFILE soft and hard limit given to containers (clamped to the host's).
const DefaultRlimitNofile = 1048576

// DefaultPath is the PATH of containers whose image and request define none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImageConfig is the part of the image's OCI config a container spec depends on.
type ImageConfig struct {
	Env        []string
	Entrypoint []string
	Cmd        []string
	WorkingDir string
	User       string
	StopSignal string
}

// SandboxFiles are host files and directories of the pod sandbox bind-mounted into every container.
// An empty field means the file is not provided.
type SandboxFiles struct {
	Hosts      string // -> /etc/hosts
	Hostname   string // -> /etc/hostname
	ResolvConf string // -> /etc/resolv.conf
	ShmDir     string // -> /dev/shm; "" gives the container its own tmpfs
}

// Params is everything Build needs.
type Params struct {
	ContainerID, SandboxID string
	Config                 *runtimeapi.ContainerConfig
	SandboxConfig          *runtimeapi.PodSandboxConfig
	Image                  ImageConfig
	// RootfsPath is the mounted root filesystem (absolute). /etc/passwd and /etc/group are read from it safely.
	RootfsPath string
	// Namespaces to use: a path joins that namespace, "" creates a new one, an absent type shares the host's.
	// Build always adds a new mount namespace, and a new cgroup namespace when Runtime.CgroupV2 is set.
	Namespaces   map[specs.LinuxNamespaceType]string
	SandboxFiles SandboxFiles
	// Hostname is exposed as $HOSTNAME; "" uses SandboxConfig.Hostname (callers pass the node's name for
	// host-network pods).
	Hostname string
	// CgroupsPath is the already computed cgroupsPath for the OCI runtime.
	CgroupsPath string
	Runtime     Features
	Host        HostInfo
	// PidsLimit, when > 0, sets linux.resources.pids.limit.
	PidsLimit int64
	// AppArmorDefaultProfile is the profile used for RuntimeDefault when AppArmor is enabled ("" = none).
	AppArmorDefaultProfile string
}

// Features are the capabilities of the OCI runtime and host that change the generated spec.
type Features struct {
	RecursiveReadOnly bool // "rro" mount option
	IDMapMounts       bool // mounts with uidMappings/gidMappings
	UserNamespaces    bool
	Seccomp           bool
	// CgroupV2 is set when the host uses the unified hierarchy: containers then get their own cgroup namespace
	// (on v1/hybrid hosts they share the host's, as containerd does, since runc's v1 cgroup mounts need it).
	CgroupV2 bool
}

// HostInfo describes the host. Zero values are filled in by DetectHost.
type HostInfo struct {
	// OOMScoreAdjMin is the lowest oom_score_adj the process may set (its own value without CAP_SYS_RESOURCE).
	OOMScoreAdjMin int
	// NofileMax is the hard RLIMIT_NOFILE of this process; 0 means unknown (no clamping).
	NofileMax uint64
	// Capabilities is this process's bounding set (bit n = capability n): what "ALL" and privileged mean.
	// 0 means every capability known to this package.
	Capabilities uint64
	// AppArmor reports whether the kernel has AppArmor enabled.
	AppArmor bool
	// Kernel is the kernel release, used by seccomp profile conditions.
	Kernel string
	// DevDir is the host device directory used for privileged containers ("" = /dev).
	DevDir string
	// MountInfo is the mountinfo file used to check propagation ("" = /proc/self/mountinfo).
	MountInfo string
}

// Build generates the OCI spec of a container.
func Build(p Params) (*specs.Spec, error) {
	cfg := p.Config
	if cfg == nil {
		return nil, errdefs.InvalidArgument("container config is required")
	}
	if p.SandboxConfig == nil {
		return nil, errdefs.InvalidArgument("sandbox config is required")
	}
	if !filepath.IsAbs(p.RootfsPath) {
		return nil, errdefs.InvalidArgument("rootfs path %q must be absolute", p.RootfsPath)
	}
	sc := cfg.GetLinux().GetSecurityContext()
	if sc == nil {
		sc = &runtimeapi.LinuxContainerSecurityContext{}
	}
	privileged := sc.GetPrivileged()
	if privileged && !p.SandboxConfig.GetLinux().GetSecurityContext().GetPrivileged() {
		return nil, errdefs.InvalidArgument("privileged container in a non-privileged sandbox")
	}

	s := &specs.Spec{
		Version:     specs.Version,
		Root:        &specs.Root{Path: p.RootfsPath, Readonly: sc.GetReadonlyRootfs()},
		Annotations: annotations(p),
		Linux: &specs.Linux{
			CgroupsPath: p.CgroupsPath,
			Resources:   &specs.LinuxResources{},
		},
	}

	// User.
	req := user.Request{
		RunAsUsername:      sc.GetRunAsUsername(),
		ImageUser:          p.Image.User,
		SupplementalGroups: sc.GetSupplementalGroups(),
		Strict:             sc.GetSupplementalGroupsPolicy() == runtimeapi.SupplementalGroupsPolicy_Strict,
	}
	if v := sc.GetRunAsUser(); v != nil {
		val := v.GetValue()
		req.RunAsUser = &val
	}
	if v := sc.GetRunAsGroup(); v != nil {
		val := v.GetValue()
		req.RunAsGroup = &val
	}
	u, err := user.Resolve(p.RootfsPath, req)
	if err != nil {
		return nil, err
	}

	proc, err := process(p, u)
	if err != nil {
		return nil, err
	}
	s.Process = proc

	if err := namespaces(p, s, privileged); err != nil {
		return nil, err
	}
	if err := mounts(p, s, privileged); err != nil {
		return nil, err
	}
	if err := devices(p, s, privileged); err != nil {
		return nil, err
	}
	if err := security(p, s, sc, u.UID); err != nil {
		return nil, err
	}
	if err := applyResources(p, s); err != nil {
		return nil, err
	}
	if err := sysctls(p, s); err != nil {
		return nil, err
	}
	return s, nil
}

func annotations(p Params) map[string]string {
	a := map[string]string{}
	for k, v := range p.Config.GetAnnotations() {
		a[k] = v
	}
	a[AnnotationContainerType] = "container"
	a[AnnotationSandboxID] = p.SandboxID
	md := p.SandboxConfig.GetMetadata()
	a[AnnotationSandboxName] = md.GetName()
	a[AnnotationSandboxNamespace] = md.GetNamespace()
	a[AnnotationSandboxUID] = md.GetUid()
	a[AnnotationContainerName] = p.Config.GetMetadata().GetName()
	if img := p.Config.GetImage().GetImage(); img != "" {
		a[AnnotationImageName] = img
	}
	return a
}

// ContainerUser returns the CRI ContainerStatus user of a spec built by Build.
func ContainerUser(s *specs.Spec) *runtimeapi.ContainerUser {
	if s == nil || s.Process == nil {
		return nil
	}
	u := &runtimeapi.LinuxContainerUser{Uid: int64(s.Process.User.UID), Gid: int64(s.Process.User.GID)}
	for _, g := range s.Process.User.AdditionalGids {
		u.SupplementalGroups = append(u.SupplementalGroups, int64(g))
	}
	return &runtimeapi.ContainerUser{Linux: u}
}

// StopSignal returns the signal to stop the container with: the CRI request's, else the image's STOPSIGNAL (a
// name in any spelling or a number), else SIGTERM. An unknown CRI value or an image signal that is not a signal is
// InvalidArgument.
func StopSignal(cfg *runtimeapi.ContainerConfig, img ImageConfig) (signal.Signal, error) {
	if sig := cfg.GetStopSignal(); sig != runtimeapi.Signal_SIGNAL_RUNTIME_DEFAULT {
		s, err := signal.FromCRI(sig)
		if err != nil {
			return signal.Signal{}, errdefs.InvalidArgument("stop_signal: %v", err)
		}
		return s, nil
	}
	if img.StopSignal == "" {
		return signal.Signal{Name: "SIGTERM", Num: unix.SIGTERM}, nil
	}
	s, err := signal.Parse(img.StopSignal)
	if err != nil {
		return signal.Signal{}, errdefs.InvalidArgument("image STOPSIGNAL %q: %v", img.StopSignal, err)
	}
	return s, nil
}
