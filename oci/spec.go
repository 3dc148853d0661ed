// Package oci builds the OCI runtime spec (a runc bundle's config.json) for a CRI container from the CRI
// request, the pod sandbox config and the image config, following the behaviour of kubelet's CRI runtimes.
package oci

import (
	"cmp"
	"path/filepath"
	"strconv"
	"strings"

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
	// ImageVolumes maps the index (in Config.Mounts) of each image mount to the host path it binds read-only:
	// the mounted view of the image, or its image_sub_path, already resolved inside the image by the caller.
	ImageVolumes map[int]string
	// AppArmorDefaultProfile is the loaded profile used for RuntimeDefault when AppArmor is enabled; "" (none
	// loaded) makes RuntimeDefault fail with FailedPrecondition there instead of running unconfined.
	AppArmorDefaultProfile string
}

// Features are the capabilities of the OCI runtime and host that change the generated spec.
type Features struct {
	RecursiveReadOnly bool // "rro" mount option
	IDMapMounts       bool // mounts with uidMappings/gidMappings
	UserNamespaces    bool
	// Seccomp is what the runtime's features document says about seccomp. It only counts when Known: a runtime
	// without a features command (crun < 1.9) still applies the profiles it is given.
	Seccomp bool
	// Known is set when the runtime answered `features`; otherwise the fields above are unknown (false).
	Known bool
	// CgroupV2 is set when the host uses the unified hierarchy: containers then get their own cgroup namespace
	// (on v1/hybrid hosts they share the host's, as containerd does, since runc's v1 cgroup mounts need it).
	CgroupV2 bool
	// OCIVersion is the ociVersion written into specs for this runtime (see SpecVersion); "" means ours.
	OCIVersion string
}

// FallbackOCIVersion is the ociVersion given to a runtime that does not say which versions it takes (no
// `features` command): crun before 1.9 refuses "unknown version specified" for anything but 1.0.x and 1.1.x.
const FallbackOCIVersion = "1.0.2"

// SpecVersion is the ociVersion to write for a runtime whose `features` reported max ("" when it has no
// `features` command or did not say): our runtime-spec version, lowered to what the runtime says it takes.
// Fields newer than that version are still written; runtimes ignore fields they do not know, as with every
// older spec.
func SpecVersion(max string) string {
	if max == "" {
		return FallbackOCIVersion
	}
	if compareVersions(max, specs.Version) < 0 {
		return max
	}
	return specs.Version
}

// compareVersions orders two dotted versions ("1.2.1", "1.3.0-rc.1": the pre-release part is ignored).
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := range 3 {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func versionParts(v string) [3]int {
	var out [3]int
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	for i, f := range strings.SplitN(v, ".", 3) {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		out[i] = n
	}
	return out
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
	// Seccomp reports whether the kernel supports seccomp filters (SECCOMP_MODE_FILTER).
	Seccomp bool
	// SELinux is the host's SELinux mode; labels are refused when it is enforcing.
	SELinux SELinuxMode
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
		Version:     cmp.Or(p.Runtime.OCIVersion, specs.Version),
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
