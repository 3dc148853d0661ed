// Package container runs containers of pod sandboxes: an overlay snapshot of the image as rootfs, an OCI spec
// built by package oci, and an OCI runtime binary watched by conmon (package ociruntime).
package container

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"github.com/noded/noded/cgroupsv2"
	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/features"
	"github.com/noded/noded/internal/faultinject"
	"github.com/noded/noded/internal/intent"
	"github.com/noded/noded/internal/keymutex"
	"github.com/noded/noded/internal/weakmemo"
	"github.com/noded/noded/oci"
	"github.com/noded/noded/oci/signal"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/store"
)

// Image is what a container needs of its image.
type Image struct {
	ID       string // sha256:<config digest>
	Ref      string // repo digest when known, else ID
	ChainID  string // top layer's chain ID: the parent snapshot
	Config   oci.ImageConfig
	RepoTags []string
}

// Images resolves image references (by name, digest or ID).
type Images interface {
	Resolve(ctx context.Context, ref string) (Image, error)
}

// CDIDevices checks and injects CDI devices (package cdi's Registry).
type CDIDevices interface {
	// Check fails (FailedPrecondition) when a device is unknown.
	Check(devices []string) error
	// Inject applies the devices' edits to the spec.
	Inject(spec *specs.Spec, devices []string) error
}

// Config configures a Manager.
type Config struct {
	StateDir       string // bundles under <StateDir>/containers/<id>
	Store          *store.Store
	Images         Images
	Snapshotter    snapshotter.Snapshotter
	Runtimes       map[string]ociruntime.Runtime // by handler name
	DefaultRuntime string
	// Cgroups names the containers' cgroups and finds them (OOM detection, leftover removal).
	Cgroups cgroupsv2.Driver
	// CgroupReader reads cgroup counters; nil detects the host's layout.
	CgroupReader *cgstats.Reader
	Host         oci.HostInfo
	// Hugetlb says whether containers' cgroups can carry hugepage limits (cgroupsv2.DetectHugetlb); limits that
	// cannot be applied are dropped when 0 and refused (FailedPrecondition) otherwise.
	Hugetlb cgroupsv2.Hugetlb
	// HostFeatures is what the kernel and the snapshot filesystem can do (probed at start); a handler gets a
	// feature only if its runtime and the host both have it. Nil trusts the runtime alone.
	HostFeatures *features.Host
	// AppArmor keeps the default AppArmor profile loaded where Host.AppArmor is set (nil: none, so
	// RuntimeDefault AppArmor fails there with FailedPrecondition).
	AppArmor AppArmorLoader
	// OnEvent is called (without locks held) for container lifecycle events.
	OnEvent func(ev *runtimeapi.ContainerEventResponse)
	// CDI resolves CDI devices (ContainerConfig.CDI_devices, cdi.k8s.io/* annotations); nil: none are known.
	CDI CDIDevices
	// CheckpointProbe returns nil when CRIU can checkpoint on this host; nil runs ociruntime.CRIUCheck.
	CheckpointProbe func(ctx context.Context) error
	// Mounts mounts rootfs and image volumes and kills leftover cgroups (nil = RealHost).
	Mounts Host
}

// AppArmorLoader loads the default AppArmor profile unless it is loaded, and returns its name
// (implemented by *apparmor.Loader).
type AppArmorLoader interface {
	Ensure(ctx context.Context) (string, error)
}

// Manager runs containers.
type Manager struct {
	cfg        Config
	bundlesDir string
	locks      keymutex.KeyMutex

	mu    sync.Mutex
	exits map[string]chan struct{} // closed when the container's exit is recorded
	// reaped: exited containers whose runtime state the reaper already deleted (RunReaper), so that their
	// removal skips the runtime's delete. Memory only: after a restart, removal runs the (idempotent) delete.
	reaped map[string]bool
	reapq  chan string // exits for the reaper; full means the removal deletes the runtime state itself

	featMu sync.Mutex
	feats  map[string]oci.Features

	// volMu serialises mounting, counting the users of and removing image volume views.
	volMu sync.Mutex

	oom oomTracker

	// entries are the ListContainers entries of the stored records (see listEntry).
	entries weakmemo.Memo[store.Container, *runtimeapi.Container]
}

// New returns a Manager; Watch must run to record exits.
func New(cfg Config) (*Manager, error) {
	if cfg.Cgroups == nil {
		return nil, errors.New("container manager: a cgroup driver is required")
	}
	if cfg.CgroupReader == nil {
		cfg.CgroupReader = cgstats.Detect()
	}
	m := &Manager{cfg: cfg, bundlesDir: filepath.Join(cfg.StateDir, "containers"), exits: map[string]chan struct{}{},
		feats: map[string]oci.Features{}, reaped: map[string]bool{}, reapq: make(chan string, 256)}
	if err := os.MkdirAll(m.bundlesDir, 0o711); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manager) runtime(handler string) (ociruntime.Runtime, error) {
	if handler == "" {
		handler = m.cfg.DefaultRuntime
	}
	rt, ok := m.cfg.Runtimes[handler]
	if !ok {
		return nil, errdefs.InvalidArgument("runtime handler %q is not configured", handler)
	}
	return rt, nil
}

// Features returns what the handler's runtime supports, as the spec builder needs it.
func (m *Manager) Features(ctx context.Context, handler string) (oci.Features, error) {
	rt, err := m.runtime(handler)
	if err != nil {
		return oci.Features{}, err
	}
	m.featMu.Lock()
	defer m.featMu.Unlock()
	if f, ok := m.feats[rt.Name()]; ok {
		return f, nil
	}
	rf, err := rt.Features(ctx)
	if err != nil {
		return oci.Features{}, err
	}
	f := oci.Features{RecursiveReadOnly: rf.RecursiveReadOnly, IDMapMounts: rf.IDMapMounts,
		UserNamespaces: rf.UserNamespaces, Seccomp: rf.Seccomp, Known: rf.Raw != nil, CgroupV2: cgroupsv2.DetectHost().Unified}
	var maxVersion string
	if rf.Raw != nil {
		maxVersion = rf.Raw.OCIVersionMax
	}
	f.OCIVersion = oci.SpecVersion(maxVersion)
	if m.cfg.HostFeatures != nil {
		hf := HandlerFeatures(*m.cfg.HostFeatures, rf)
		f.RecursiveReadOnly, f.IDMapMounts, f.UserNamespaces = hf.RecursiveReadOnly, hf.IDMapMounts, hf.UserNamespaces
	}
	m.feats[rt.Name()] = f
	return f, nil
}

// HandlerFeatures is what a handler whose runtime reports rf can do on a host that can do h.
func HandlerFeatures(h features.Host, rf *ociruntime.Features) features.Handler {
	return features.Combine(h, features.Runtime{
		RecursiveReadOnly: rf.RecursiveReadOnly, UserNamespaces: rf.UserNamespaces, IDMapMounts: rf.IDMapMounts,
	})
}

// CheckPodSecurity refuses pod security settings this host cannot honour (see oci.CheckPodSELinux).
func (m *Manager) CheckPodSecurity(cfg *runtimeapi.PodSandboxConfig) error {
	return oci.CheckPodSELinux(m.cfg.Host, cfg)
}

// UniqueName is the name a container is reserved under.
func UniqueName(sb *store.Sandbox, md *runtimeapi.ContainerMetadata) string {
	return fmt.Sprintf("%s_%s_%d", md.GetName(), sb.ID, md.GetAttempt())
}

func (m *Manager) cgroupsPath(sb *store.Sandbox, name string) (string, error) {
	return m.cfg.Cgroups.CgroupsPath(sb.CgroupParent, name)
}

func validateContainerConfig(cfg *runtimeapi.ContainerConfig) error {
	md := cfg.GetMetadata()
	if md == nil || md.Name == "" {
		return errdefs.InvalidArgument("container metadata name is required")
	}
	if strings.ContainsAny(md.Name, "/\x00") {
		return errdefs.InvalidArgument("container name %q contains an invalid character", md.Name)
	}
	if cfg.GetImage().GetImage() == "" {
		return errdefs.InvalidArgument("container image is required")
	}
	if lp := cfg.GetLogPath(); lp != "" {
		if filepath.IsAbs(lp) || strings.Contains(lp, "..") || strings.Contains(lp, ":") {
			return errdefs.InvalidArgument("log path %q must be relative to the sandbox log directory, without .. or :", lp)
		}
	}
	return nil
}

// Create makes a container in the sandbox: its snapshot, bundle and a created (not started) runtime container.
func (m *Manager) Create(ctx context.Context, sb store.Sandbox, cfg *runtimeapi.ContainerConfig) (string, error) {
	if err := validateContainerConfig(cfg); err != nil {
		return "", err
	}
	if sb.State != store.SandboxReady {
		return "", errdefs.FailedPrecondition("pod sandbox %s is not ready", sb.ID)
	}
	name := UniqueName(&sb, cfg.GetMetadata())
	// The name index, not a scan of the pod's containers (names carry the sandbox's, so only this pod's match).
	if c, ok := m.cfg.Store.ContainerByName(name); ok && c.SandboxID == sb.ID {
		if id, handed, err := m.intents().HandOff(&c); handed || err != nil {
			return id, err
		}
		return "", errdefs.AlreadyExists("container name %q is reserved by %s", cfg.GetMetadata().GetName(), c.ID)
	}
	img, err := m.cfg.Images.Resolve(ctx, cfg.GetImage().GetImage())
	if err != nil {
		if errdefs.IsNotFound(err) {
			return "", errdefs.NotFound("image %q not found: pull it first", cfg.GetImage().GetImage())
		}
		return "", err
	}
	stopSignal, err := oci.StopSignal(cfg, img.Config)
	if err != nil {
		return "", err
	}
	// Resources are checked before anything is made, hugepage limits against what this node can apply.
	res, err := oci.Resources(cfg.GetLinux().GetResources())
	if err != nil {
		return "", err
	}
	if _, err := m.cfg.Hugetlb.Filter(res.HugepageLimits); err != nil {
		return "", err
	}
	cdiDevices, err := m.checkCDI(cfg)
	if err != nil {
		return "", err
	}
	vols, err := m.resolveImageVolumes(ctx, cfg)
	if err != nil {
		return "", err
	}
	if len(vols) > 0 {
		// The stored config reports each image mount's digested reference in ContainerStatus.mounts.
		cfg = proto.Clone(cfg).(*runtimeapi.ContainerConfig)
		for _, v := range vols {
			cfg.Mounts[v.index].Image.ImageRef = v.image.Ref
		}
	}
	rt, err := m.runtime(sb.RuntimeHandler)
	if err != nil {
		return "", err
	}
	id := store.NewID()
	cgroupsPath, err := m.cgroupsPath(&sb, id)
	if err != nil {
		return "", err
	}
	unlock := m.locks.Lock(id)
	defer unlock()
	bundle := filepath.Join(m.bundlesDir, id)
	c := &store.Container{
		ID: id, SandboxID: sb.ID, Name: name, Config: cfg, State: store.ContainerCreating,
		CreatedAt: time.Now().UnixNano(), ImageName: cfg.GetImage().GetImage(), ImageID: img.ID, ImageRef: img.Ref,
		Runtime: rt.Name(), Bundle: bundle, Rootfs: filepath.Join(bundle, "rootfs"), SnapshotKey: "ctr-" + id,
		CgroupsPath: cgroupsPath, StopSignal: stopSignal.Name, ImageVolumes: imageVolumeIDs(vols),
	}
	if cfg.GetLogPath() != "" && sb.Config.GetLogDirectory() != "" {
		c.LogPath = filepath.Join(sb.Config.GetLogDirectory(), cfg.GetLogPath())
	}
	if r := cfg.GetLinux().GetResources(); r != nil {
		c.ResourcesPB, _ = proto.Marshal(r)
	}
	// The creation runs to its end even if the caller gives up, for the caller's retry (see intent.Kind.Create).
	if err := m.intents().Create(ctx, c, func(ctx context.Context, c *store.Container) error {
		faultinject.Point(faultinject.ContainerIntent)
		return m.create(ctx, &sb, c, img, rt, cdiDevices, vols)
	}, intent.Detached(intent.RollbackTimeout)); err != nil {
		return "", err
	}
	faultinject.Point(faultinject.ContainerCreated)
	m.emit(c, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
	return id, nil
}

func (m *Manager) create(ctx context.Context, sb *store.Sandbox, c *store.Container, img Image, rt ociruntime.Runtime, cdiDevices []string, vols []imageVolume) error {
	cfg := c.Config
	if err := checkContainerUserns(sb, cfg); err != nil {
		return err
	}
	idm, userns := podUserns(sb)
	if err := makeBundleDir(c.Bundle, c.Rootfs, idm, userns); err != nil {
		return err
	}
	if c.LogPath != "" {
		if err := os.MkdirAll(filepath.Dir(c.LogPath), 0o755); err != nil {
			return fmt.Errorf("create log dir: %w", err)
		}
	}
	opts := ociruntime.CreateOpts{
		ID: c.ID, Name: cfg.GetMetadata().GetName(), Bundle: c.Bundle, LogPath: c.LogPath,
		Terminal: cfg.GetTty(), Stdin: cfg.GetStdin(), StdinOnce: cfg.GetStdinOnce(),
	}
	// conmon is started now, blocked on its start pipe, from a goroutine of its own, so that its start (noded's
	// fork and exec of it, its dynamic libraries, its fork: 3-5 ms on the critical path before) overlaps the
	// snapshot, the mount and the spec below instead of following them (issue 16). The intent record is durable
	// (this runs inside intents().Create): a crash from here on is rolled back by recovery, whose runtime delete
	// waits for conmon. A conmon orphaned by a crash before Run goes on when it reads end of file on its start
	// pipe and runs the runtime's create on the bundle as it is; config.json gets its name only right before Run,
	// so such a create fails for want of it (kill points container.create.rootfs and .bundle).
	var spawned chan spawnResult
	if sp, ok := rt.(ociruntime.Spawner); ok {
		spawned = make(chan spawnResult, 1)
		go func() {
			p, err := sp.Spawn(ctx, opts)
			spawned <- spawnResult{p, err}
		}()
		defer func() {
			if spawned != nil {
				if r := <-spawned; r.p != nil {
					r.p.Abort()
				}
			}
		}()
	}
	mounts, err := m.cfg.Snapshotter.Prepare(ctx, c.SnapshotKey, img.ChainID)
	if err != nil {
		return fmt.Errorf("prepare rootfs snapshot: %w", err)
	}
	if userns {
		// Not nosuid: the flags of the host mount would be locked in the container's user namespace. A setuid
		// file seen through the ID-mapped mount is owned by the pod's unprivileged host IDs anyway.
		err = m.h().MountAllIDMapped(mounts, c.Rootfs, idm)
	} else {
		err = m.h().MountAll(hostSideMounts(mounts), c.Rootfs)
	}
	if err != nil {
		return fmt.Errorf("mount rootfs: %w", err)
	}
	faultinject.Point(faultinject.ContainerRootfs)
	volSources := map[int]string{}
	for _, v := range vols {
		root, err := m.acquireImageVolume(ctx, v.image, sb)
		if err != nil {
			return err
		}
		if volSources[v.index], err = imageVolumeSource(v.index, root, cfg.GetMounts()[v.index].GetImageSubPath()); err != nil {
			return err
		}
	}
	feats, err := m.Features(ctx, sb.RuntimeHandler)
	if err != nil {
		return err
	}
	ns := map[specs.LinuxNamespaceType]string{}
	for t, typ := range map[string]specs.LinuxNamespaceType{"net": specs.NetworkNamespace, "ipc": specs.IPCNamespace, "uts": specs.UTSNamespace, "user": specs.UserNamespace} {
		if p, ok := sb.Namespaces[t]; ok {
			ns[typ] = p
		}
	}
	nsOpts := cfg.GetLinux().GetSecurityContext().GetNamespaceOptions()
	switch {
	case sb.HostPID || nsOpts.GetPid() == runtimeapi.NamespaceMode_NODE:
	case sb.PodPID && sb.InitPID > 0:
		ns[specs.PIDNamespace] = fmt.Sprintf("/proc/%d/ns/pid", sb.InitPID)
	case nsOpts.GetPid() == runtimeapi.NamespaceMode_TARGET && nsOpts.GetTargetId() != "":
		target, err := m.cfg.Store.Container(nsOpts.GetTargetId())
		if err != nil || target.Pid == 0 {
			return errdefs.NotFound("target container %q for the PID namespace is not running", nsOpts.GetTargetId())
		}
		ns[specs.PIDNamespace] = fmt.Sprintf("/proc/%d/ns/pid", target.Pid)
	default:
		ns[specs.PIDNamespace] = ""
	}
	files := oci.SandboxFiles{
		Hosts: filepath.Join(sb.Dir, "hosts"), Hostname: filepath.Join(sb.Dir, "hostname"),
		ResolvConf: filepath.Join(sb.Dir, "resolv.conf"),
	}
	if sb.HostIPC {
		files.ShmDir = "/dev/shm"
	} else {
		files.ShmDir = filepath.Join(sb.Dir, "shm")
	}
	// The profile may have been unloaded since the start (an apparmor service reload): loaded again here.
	var aaProfile string
	var aaErr error
	if m.cfg.Host.AppArmor && m.cfg.AppArmor != nil {
		aaProfile, aaErr = m.cfg.AppArmor.Ensure(ctx)
	}
	spec, err := oci.Build(oci.Params{
		ContainerID: c.ID, SandboxID: sb.ID, Config: cfg, SandboxConfig: sb.Config, Image: img.Config,
		RootfsPath: c.Rootfs, Namespaces: ns, SandboxFiles: files, Hostname: sb.Hostname,
		CgroupsPath: c.CgroupsPath, Runtime: feats, Host: m.cfg.Host, AppArmorDefaultProfile: aaProfile,
		ImageVolumes: volSources,
	})
	if err != nil {
		if aaErr != nil && errors.Is(err, errdefs.ErrFailedPrecondition) {
			return fmt.Errorf("%w (%v)", err, aaErr)
		}
		return err
	}
	if spec.Linux.Resources.HugepageLimits, err = m.cfg.Hugetlb.Filter(spec.Linux.Resources.HugepageLimits); err != nil {
		return err
	}
	if len(cdiDevices) > 0 {
		if err := m.cfg.CDI.Inject(spec, cdiDevices); err != nil {
			return err
		}
	}
	if u := oci.ContainerUser(spec); u != nil && u.Linux != nil {
		c.UID, c.GID, c.SupplGroups = u.Linux.Uid, u.Linux.Gid, u.Linux.SupplementalGroups
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	tmpConfig := filepath.Join(c.Bundle, configTmpName)
	if err := os.WriteFile(tmpConfig, data, 0o600); err != nil {
		return err
	}
	// No store write before the runtime create: rolling back an interrupted creation needs only what the intent
	// record holds (ID, bundle, rootfs, snapshot key).
	faultinject.Point(faultinject.ContainerBundle)
	if err := os.Rename(tmpConfig, filepath.Join(c.Bundle, "config.json")); err != nil {
		return err
	}
	var pid int
	if spawned != nil {
		r := <-spawned
		spawned = nil // Run cleans up after itself
		if r.err != nil {
			return fmt.Errorf("create container: %w", r.err)
		}
		pid, err = r.p.Run(ctx)
	} else {
		pid, err = rt.Create(ctx, opts)
	}
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	faultinject.Point(faultinject.ContainerRuntimeCreated)
	c.Pid = pid
	if !userns {
		// The host-side root is nosuid,nodev; cleared in the container's own view of it while its init waits
		// for the start, before any of its code runs. A failure fails the creation (rolled back).
		if err := m.h().AllowSetuid(pid, c.Rootfs); err != nil {
			return fmt.Errorf("container root suid,dev: %w", err)
		}
	}
	return nil
}

// spawnResult is what ociruntime.Spawner.Spawn returned, from the goroutine create starts it in.
type spawnResult struct {
	p   ociruntime.Pending
	err error
}

// configTmpName is config.json before its rename, right before the runtime's create: a conmon started early
// (ociruntime.Spawn) and orphaned by a crash runs a create that finds no config.json.
const configTmpName = "config.json.tmp"

// makeBundleDir makes a container's bundle dir and its rootfs mount point. The bundle is 0700, so that no host
// user reaches the container's files; with a user namespace it is 0710 with the group of the pod's root, which
// the runtime needs to reach the rootfs as (as containerd does since CVE-2021-41103).
func makeBundleDir(bundle, rootfs string, idm snapshotter.IDMapping, userns bool) error {
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return err
	}
	mode := os.FileMode(0o700)
	if userns {
		if err := os.Chown(bundle, 0, idm.RootGID); err != nil {
			return fmt.Errorf("bundle dir: %w", err)
		}
		mode = 0o710
	}
	if err := os.Chmod(bundle, mode); err != nil {
		return fmt.Errorf("bundle dir: %w", err)
	}
	return nil
}

// hostSideMounts adds nosuid and nodev to the rootfs mounts: on the host, the container's setuid binaries and
// device nodes must be inert (the container's own view gets them back from the rootfs hook).
func hostSideMounts(mounts []snapshotter.Mount) []snapshotter.Mount {
	out := make([]snapshotter.Mount, len(mounts))
	for i, m := range mounts {
		m.Options = append(slices.Clone(m.Options), "nosuid", "nodev")
		out[i] = m
	}
	return out
}

// cleanup removes every resource of a container: runtime state, rootfs mount, snapshot, bundle.
func (m *Manager) cleanup(ctx context.Context, c *store.Container) error {
	var errs []error
	if rt, err := m.runtime(c.Runtime); err == nil {
		var derr error
		switch {
		case m.wasReaped(c.ID):
		case c.State == store.ContainerExited:
			derr = deleteExited(ctx, rt, c.ID)
		default:
			// Created, or a creation rolled back: the runtime may have an init waiting, which only the
			// forced delete kills.
			derr = rt.Delete(ctx, c.ID, true)
		}
		if derr != nil && !errdefs.IsNotFound(derr) {
			errs = append(errs, derr)
		} else if c.CgroupsPath != "" {
			// The runtime removes the cgroup of a container it knew. One whose state was lost may have left
			// processes there; one it never got to (or crashed in) may have left the cgroup.
			_ = m.h().KillCgroup(c.CgroupsPath)
			if err := m.cfg.Cgroups.Remove(ctx, c.CgroupsPath); err != nil {
				errs = append(errs, err)
			}
		}
	}
	faultinject.Point(faultinject.ContainerRemoveRuntime)
	if err := m.h().UnmountAll(c.Rootfs); err != nil {
		errs = append(errs, err)
	}
	if err := m.cfg.Snapshotter.Remove(ctx, c.SnapshotKey); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, err)
	}
	if err := m.releaseImageVolumes(ctx, c); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(c.Bundle); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) exitChan(id string) chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch, ok := m.exits[id]
	if !ok {
		ch = make(chan struct{})
		m.exits[id] = ch
	}
	return ch
}

// Start starts a created container.
func (m *Manager) Start(ctx context.Context, id string) error {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return err
	}
	unlock := m.locks.Lock(c.ID)
	defer unlock()
	c, err = m.cfg.Store.Container(c.ID)
	if err != nil {
		return err
	}
	if c.State == store.ContainerRunning {
		return nil
	}
	if c.State != store.ContainerCreated {
		return errdefs.FailedPrecondition("container %s is %s, not created", c.ID, c.State)
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return err
	}
	m.exitChan(c.ID)
	faultinject.Point(faultinject.ContainerStartIntent)
	m.oom.starting(m, &c)
	startedAt := time.Now().UnixNano() // before the process can run, so never after its exit
	if err := rt.Start(ctx, c.ID); err != nil {
		_, _ = m.cfg.Store.UpdateContainer(c.ID, func(x *store.Container) error {
			x.State, x.FinishedAt, x.ExitCode, x.Reason, x.Message = store.ContainerExited, time.Now().UnixNano(), 128, "StartError", err.Error()
			return nil
		})
		return fmt.Errorf("start container %s: %w", c.ID, err)
	}
	faultinject.Point(faultinject.ContainerStarted)
	// Running is a deferred write (store/deferred.go): it rides on the next commit instead of paying its own pair
	// of fdatasyncs. A crash before it lands leaves the record created, and recovery at start (Recover) asks the
	// runtime: running gives running (with the recovery's time as StartedAt: the exact start time is what is
	// lost), stopped gives the exit from conmon's exit file. The exit file and the runtime's state go only with
	// the runtime's delete, which the reaper and Remove do only once this container's deferred writes are on disk.
	updated, err := m.cfg.Store.UpdateContainerDeferred(c.ID, func(x *store.Container) error {
		if x.State == store.ContainerCreated {
			x.State, x.StartedAt = store.ContainerRunning, startedAt
		}
		return nil
	})
	if err != nil {
		return err
	}
	faultinject.Point(faultinject.ContainerStartRecorded)
	m.emit(&updated, runtimeapi.ContainerEventType_CONTAINER_STARTED_EVENT)
	return nil
}

// HandleExit records a container's exit reported by conmon.
func (m *Manager) HandleExit(ev ociruntime.ExitEvent) {
	c, err := m.cfg.Store.Container(ev.ID)
	if err != nil || c.ID != ev.ID {
		return
	}
	// A Start in progress records the start (and sends its event) first.
	unlock := m.locks.Lock(c.ID)
	defer unlock()
	if c, err = m.cfg.Store.Container(c.ID); err != nil {
		return
	}
	if c.State == store.ContainerExited {
		m.closeExit(c.ID)
		return
	}
	oom := m.oomKilled(&c, ev.ExitCode)
	// The exit is a deferred write (store/deferred.go), like Start's running: conmon's exit file keeps code and
	// time until the runtime's delete removes it, and the reaper and Remove delete only once the record is on
	// disk (AwaitContainer, SyncContainer). A crash before it lands leaves the record running or created with the
	// exit file there, and recovery at start records the exit from it, as for an exit while noded was down.
	updated, err := m.cfg.Store.UpdateContainerDeferred(c.ID, func(x *store.Container) error {
		x.State = store.ContainerExited
		x.ExitCode = int32(ev.ExitCode)
		x.FinishedAt = ev.ExitedAt.UnixNano()
		if x.StartedAt == 0 {
			x.StartedAt = x.FinishedAt
		}
		// The exit time is the exit file's mtime, which the kernel takes from its coarse clock (up to
		// a tick behind the clock StartedAt was read from): a process that exits at once must not be
		// reported as finished before it started.
		if x.FinishedAt < x.StartedAt {
			x.FinishedAt = x.StartedAt
		}
		switch {
		case oom:
			x.Reason = "OOMKilled"
		case ev.ExitCode == 0:
			x.Reason = "Completed"
		default:
			x.Reason = "Error"
		}
		return nil
	})
	if err != nil {
		klog.ErrorS(err, "recording container exit", "containerID", ev.ID)
		return
	}
	faultinject.Point(faultinject.ContainerExitRecorded)
	m.closeExit(c.ID)
	m.emit(&updated, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
	select {
	case m.reapq <- c.ID:
	default:
	}
}

// RunReaper deletes the runtime state of containers once their exit is recorded (the runtime's delete of a
// stopped container, an exec of runc: most of what RemoveContainer and RemovePodSandbox cost otherwise), with
// workers goroutines, until ctx ends. The container's record is untouched: a crash before or during the
// delete leaves an exited container whose removal runs the delete again.
func (m *Manager) RunReaper(ctx context.Context, workers int) {
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case id := <-m.reapq:
					m.reap(ctx, id)
				}
			}
		})
	}
	wg.Wait()
}

// reap deletes the runtime state of container id if it is still there and exited.
func (m *Manager) reap(ctx context.Context, id string) {
	// The delete removes conmon's exit file, from which recovery rebuilds a deferred exit (HandleExit): commit
	// it first. The reaper makes that commit itself rather than wait for the next RPC's (StopPodSandbox's, after
	// its CNI DEL): off the RPCs' path, it lets the delete run beside the pod's network teardown instead of after
	// it. Before the lock: a writer whose commit carries it may hold the container's lock meanwhile.
	m.cfg.Store.SyncContainer(id)
	unlock := m.locks.Lock(id)
	defer unlock()
	c, err := m.cfg.Store.Container(id)
	if err != nil || c.State != store.ContainerExited {
		return
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return
	}
	if err := deleteExited(ctx, rt, c.ID); err != nil && !errdefs.IsNotFound(err) {
		klog.V(2).InfoS("deleting an exited container's runtime state failed; its removal retries", "containerID", id, "err", err)
		return
	}
	m.mu.Lock()
	m.reaped[id] = true
	m.mu.Unlock()
}

// deleteExited deletes the runtime state of a container that should have exited: a plain delete first, and the
// forced one only when that fails. runc's `delete --force` always goes through its kill path, which sleeps 100 ms
// before it first looks whether the init is gone, even for a stopped container (runc 1.5.2: 110 ms against 8 ms
// for the plain delete, most of a pod's teardown); the plain delete of a stopped container does the same cleanup
// (for a container without a PID namespace of its own it kills what is left in its cgroup, as --force does) and
// refuses a container that is still running or only created, which the forced delete then kills.
func deleteExited(ctx context.Context, rt ociruntime.Runtime, id string) error {
	err := rt.Delete(ctx, id, false)
	if err == nil || errdefs.IsNotFound(err) {
		return err
	}
	klog.V(4).InfoS("the runtime's delete refused the container, forcing it", "containerID", id, "err", err)
	return rt.Delete(ctx, id, true)
}

func (m *Manager) wasReaped(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reaped[id]
}

func (m *Manager) closeExit(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if ch, ok := m.exits[id]; ok {
		select {
		case <-ch:
		default:
			close(ch)
		}
	} else {
		ch := make(chan struct{})
		close(ch)
		m.exits[id] = ch
	}
}

// Stop stops a container: its stop signal, then SIGKILL after timeout. Unknown IDs and stopped containers succeed.
func (m *Manager) Stop(ctx context.Context, id string, timeout time.Duration) error {
	c, err := m.cfg.Store.Container(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State != store.ContainerRunning && c.State != store.ContainerUnknown {
		if c.State == store.ContainerCreated {
			// A created container never ran: kill its runtime process so it cannot be started later.
			if rt, err := m.runtime(c.Runtime); err == nil {
				_ = rt.Kill(ctx, c.ID, syscall.SIGKILL, true)
			}
		}
		return nil
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return err
	}
	exited := m.exitChan(c.ID)
	m.oom.stopping(c.ID)
	if timeout > 0 {
		sig := syscall.SIGTERM
		if c.StopSignal != "" {
			if s, err := signal.Parse(c.StopSignal); err == nil {
				sig = s.Num
			}
		}
		if err := m.signal(ctx, rt, &c, sig, false); err != nil && !errdefs.IsNotFound(err) {
			klog.V(2).InfoS("stop signal failed, killing", "containerID", c.ID, "err", err)
		}
		faultinject.Point(faultinject.ContainerStopSignalled)
		t := time.NewTimer(timeout)
		select {
		case <-exited:
			t.Stop()
			return nil
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	if err := m.signal(ctx, rt, &c, syscall.SIGKILL, true); err != nil {
		switch {
		case errdefs.IsNotFound(err):
			// The runtime no longer knows it (its state was lost): kill what is left in its cgroup.
			_ = m.h().KillCgroup(c.CgroupsPath)
			m.recordLost(c.ID)
			return nil
		case errors.Is(err, errdefs.ErrFailedPrecondition):
			// Not running any more: its exit is on the way from conmon.
		default:
			return fmt.Errorf("kill container %s: %w", c.ID, err)
		}
	}
	faultinject.Point(faultinject.ContainerStopKilled)
	select {
	case <-exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(30 * time.Second):
		return fmt.Errorf("container %s did not exit 30s after SIGKILL", c.ID)
	}
}

// ownPIDNamespace reports whether c was created with a PID namespace of its own (neither the host's, the pod's
// shared one nor another container's), as createSpec decides it.
func (m *Manager) ownPIDNamespace(c *store.Container) bool {
	sb, err := m.cfg.Store.Sandbox(c.SandboxID)
	if err != nil || sb.HostPID || sb.PodPID || c.Config == nil {
		return false
	}
	mode := c.Config.GetLinux().GetSecurityContext().GetNamespaceOptions().GetPid()
	return mode != runtimeapi.NamespaceMode_NODE && mode != runtimeapi.NamespaceMode_TARGET
}

// signalInit sends sig to a running container's init with a pidfd, without exec'ing the runtime, when the
// container has its own PID namespace and its recorded init is verified (pidsignal.go). A non-nil error means
// nothing was sent: the caller uses the runtime.
func (m *Manager) signalInit(c *store.Container, sig syscall.Signal) error {
	if !m.ownPIDNamespace(c) {
		return fmt.Errorf("container %s: %w", c.ID, errNotInit)
	}
	if err := m.h().SignalInit(c.Pid, c.CgroupsPath, sig); err != nil {
		klog.V(4).InfoS("signalling the container's init directly is not possible, using the runtime", "containerID", c.ID, "err", err)
		return err
	}
	return nil
}

// signal sends sig to c's init through a pidfd when that is safe (signalInit), else through the runtime: `kill
// <id> sig`, or with all `kill --all <id> sig` (for SIGKILL to an own PID namespace's init the kernel kills the
// whole namespace, which is what --all does).
func (m *Manager) signal(ctx context.Context, rt ociruntime.Runtime, c *store.Container, sig syscall.Signal, all bool) error {
	if m.signalInit(c, sig) == nil {
		return nil
	}
	return rt.Kill(ctx, c.ID, sig, all)
}

// Remove stops (kills) the container if needed and deletes everything of it. Unknown IDs succeed.
func (m *Manager) Remove(ctx context.Context, id string) error {
	return m.remove(ctx, id, false)
}

// RemoveInPod is Remove for RemovePodSandbox, which deletes the sandbox's record after its containers': the
// container's delete is a deferred write that the sandbox's delete carries (one commit for the pod's removal).
// A crash before that commit leaves the container's record with everything of it removed (like a crash at
// ContainerRemoveCleaned), and the sandbox's record, which is never deleted before it (commits keep the queue's
// order): the pod stays listed, and kubelet's RemovePodSandbox again removes the container, which is idempotent.
func (m *Manager) RemoveInPod(ctx context.Context, id string) error {
	return m.remove(ctx, id, true)
}

func (m *Manager) remove(ctx context.Context, id string, deferDelete bool) error {
	c, err := m.cfg.Store.Container(id)
	if errdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.State == store.ContainerRunning || c.State == store.ContainerUnknown {
		if err := m.Stop(ctx, c.ID, 0); err != nil {
			return err
		}
	}
	unlock := m.locks.Lock(c.ID)
	defer unlock()
	// Read again under the lock: the stop above (or a concurrent one) has recorded the exit since.
	if c, err = m.cfg.Store.Container(c.ID); errdefs.IsNotFound(err) {
		return nil
	} else if err != nil {
		return err
	}
	faultinject.Point(faultinject.ContainerRemoveIntent)
	// The cleanup deletes the exit file and the runtime's state, from which recovery rebuilds a deferred running
	// or exit: those go to disk first (free when they are already there, as when a stop came before).
	m.cfg.Store.SyncContainer(c.ID)
	if err := m.cleanup(ctx, &c); err != nil {
		_, _ = m.cfg.Store.UpdateContainer(c.ID, func(x *store.Container) error { x.Error = err.Error(); return nil })
		return err
	}
	faultinject.Point(faultinject.ContainerRemoveCleaned)
	del := m.cfg.Store.DeleteContainer
	if deferDelete {
		del = m.cfg.Store.DeleteContainerDeferred
	}
	if err := del(c.ID); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.exits, c.ID)
	delete(m.reaped, c.ID)
	m.mu.Unlock()
	m.oom.forget(c.ID)
	m.emit(&c, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
	return nil
}

func (m *Manager) emit(c *store.Container, typ runtimeapi.ContainerEventType) {
	if m.cfg.OnEvent == nil {
		return
	}
	m.cfg.OnEvent(m.event(c, typ))
}

// event builds a lifecycle event of c the way kubelet's evented PLEG takes it: with the status of c's pod and
// of all the pod's containers, as they are now (c as given, even if the store has moved on; a deleted c is no
// longer one of them). kubelet drops events without a pod status.
func (m *Manager) event(c *store.Container, typ runtimeapi.ContainerEventType) *runtimeapi.ContainerEventResponse {
	ev := &runtimeapi.ContainerEventResponse{ContainerId: c.ID, ContainerEventType: typ, CreatedAt: time.Now().UnixNano()}
	if sb, err := m.cfg.Store.Sandbox(c.SandboxID); err == nil {
		ev.PodSandboxStatus = sandbox.ToStatus(&sb)
	}
	seen := false
	for _, x := range m.cfg.Store.Containers(c.SandboxID) {
		if x.ID == c.ID {
			if typ == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
				continue
			}
			x, seen = *c, true
		} else if x.State == store.ContainerCreating {
			continue
		}
		ev.ContainersStatuses = append(ev.ContainersStatuses, ToStatus(&x))
	}
	if !seen && typ != runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
		ev.ContainersStatuses = append(ev.ContainersStatuses, ToStatus(c))
	}
	return ev
}
