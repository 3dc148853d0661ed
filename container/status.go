package container

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci"
	"github.com/noded/noded/oci/signal"
	"github.com/noded/noded/sandbox"
	"github.com/noded/noded/store"
)

func criState(s store.ContainerState) runtimeapi.ContainerState {
	switch s {
	case store.ContainerCreated:
		return runtimeapi.ContainerState_CONTAINER_CREATED
	case store.ContainerRunning:
		return runtimeapi.ContainerState_CONTAINER_RUNNING
	case store.ContainerExited:
		return runtimeapi.ContainerState_CONTAINER_EXITED
	}
	return runtimeapi.ContainerState_CONTAINER_UNKNOWN
}

func imageSpec(c *store.Container) *runtimeapi.ImageSpec {
	spec := &runtimeapi.ImageSpec{}
	fillImageSpec(spec, c)
	return spec
}

// fillImageSpec sets a new ImageSpec from the config's (every field of it, sharing its annotations: see
// TestFillImageSpecCopiesEveryField), with the image as the user named it. kubelet creates containers from the
// image ID and names the image the pod asked for in UserSpecifiedImage; it shows status.image as the container's
// image (a pod's image update waits for it), so report the name the user gave, as CRI-O does (containerd
// reports a tag of the image).
func fillImageSpec(spec *runtimeapi.ImageSpec, c *store.Container) {
	if src := c.Config.GetImage(); src != nil {
		spec.Annotations, spec.UserSpecifiedImage, spec.RuntimeHandler, spec.ImageRef = src.Annotations, src.UserSpecifiedImage, src.RuntimeHandler, src.ImageRef
	}
	spec.Image = c.ImageName
	if u := spec.GetUserSpecifiedImage(); u != "" {
		spec.Image = u
	}
}

// ToStatus converts a stored container to its CRI status.
func ToStatus(c *store.Container) *runtimeapi.ContainerStatus {
	cfg := c.Config
	st := &runtimeapi.ContainerStatus{
		Id:          c.ID,
		Metadata:    cfg.GetMetadata(),
		State:       criState(c.State),
		CreatedAt:   c.CreatedAt,
		StartedAt:   c.StartedAt,
		FinishedAt:  c.FinishedAt,
		ExitCode:    c.ExitCode,
		Image:       imageSpec(c),
		ImageRef:    c.ImageRef,
		ImageId:     c.ImageID,
		Reason:      c.Reason,
		Message:     c.Message,
		Labels:      cfg.GetLabels(),
		Annotations: cfg.GetAnnotations(),
		Mounts:      cfg.GetMounts(),
		LogPath:     c.LogPath,
		User: &runtimeapi.ContainerUser{Linux: &runtimeapi.LinuxContainerUser{
			Uid: c.UID, Gid: c.GID, SupplementalGroups: c.SupplGroups,
		}},
	}
	if c.StopSignal != "" {
		if sig, err := signal.Parse(c.StopSignal); err == nil {
			st.StopSignal = sig.CRI()
		}
	}
	if c.State == store.ContainerUnknown && st.Reason == "" {
		st.Reason, st.Message = "Unknown", c.Error
	}
	if len(c.ResourcesPB) > 0 {
		r := &runtimeapi.LinuxContainerResources{}
		if proto.Unmarshal(c.ResourcesPB, r) == nil {
			st.Resources = &runtimeapi.ContainerResources{Linux: r}
		}
	}
	return st
}

// Status returns a container's CRI status and, when verbose, its info map.
func (m *Manager) Status(id string, verbose bool) (*runtimeapi.ContainerStatus, map[string]string, error) {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return nil, nil, err
	}
	st := ToStatus(&c)
	var info map[string]string
	if verbose {
		v := map[string]any{
			"sandboxID": c.SandboxID, "pid": c.Pid, "runtime": c.Runtime, "bundle": c.Bundle, "rootfs": c.Rootfs,
			"snapshotKey": c.SnapshotKey, "cgroupsPath": c.CgroupsPath, "stopSignal": c.StopSignal, "error": c.Error,
		}
		b, _ := json.Marshal(v)
		info = map[string]string{"info": string(b)}
	}
	return st, info, nil
}

// List returns the containers matching filter. The entries are shared between calls (see listEntry): callers
// must not modify them.
func (m *Manager) List(filter *runtimeapi.ContainerFilter) []*runtimeapi.Container {
	recs := m.cfg.Store.ContainerRecords("")
	if filter != nil && filter.PodSandboxId != "" {
		if sb, err := m.cfg.Store.Sandbox(filter.PodSandboxId); err == nil && sb.ID == filter.PodSandboxId {
			recs = m.cfg.Store.ContainerRecords(sb.ID) // a full ID: only that pod's
		}
	}
	keep := make([]*store.Container, 0, len(recs))
	for _, c := range recs {
		if c.State == store.ContainerCreating {
			continue
		}
		if filter != nil {
			if filter.Id != "" && !strings.HasPrefix(c.ID, filter.Id) {
				continue
			}
			if filter.PodSandboxId != "" && !strings.HasPrefix(c.SandboxID, filter.PodSandboxId) {
				continue
			}
			if filter.State != nil && criState(c.State) != filter.State.State {
				continue
			}
			if !sandbox.LabelsMatch(c.Config.GetLabels(), filter.LabelSelector) {
				continue
			}
		}
		keep = append(keep, c)
	}
	if len(keep) == 0 {
		return nil
	}
	out := make([]*runtimeapi.Container, len(keep))
	for i, c := range keep {
		out[i] = m.entries.Get(c, listEntry)
	}
	return out
}

// listEntry is the ListContainers entry of a stored record. The store never modifies a record once stored (an
// update replaces it), so the entry is made once per record and shared by every list until the record is
// replaced or removed: callers must not modify it.
func listEntry(c *store.Container) *runtimeapi.Container {
	e := &runtimeapi.Container{
		Id: c.ID, PodSandboxId: c.SandboxID, Metadata: c.Config.GetMetadata(), Image: &runtimeapi.ImageSpec{},
		ImageRef: c.ImageRef, ImageId: c.ImageID, State: criState(c.State), CreatedAt: c.CreatedAt,
		Labels: c.Config.GetLabels(), Annotations: c.Config.GetAnnotations(),
	}
	fillImageSpec(e.Image, c)
	return e
}

// Update applies new resources to a running or created container and persists them: the fields r sets are merged
// into the stored resources (see mergeResources).
func (m *Manager) Update(ctx context.Context, id string, r *runtimeapi.LinuxContainerResources) error {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return err
	}
	unlock := m.locks.Lock(c.ID)
	defer unlock()
	if c.State != store.ContainerRunning && c.State != store.ContainerCreated {
		return errdefs.FailedPrecondition("container %s is %s: only created or running containers can be updated", c.ID, c.State)
	}
	if r == nil {
		return nil
	}
	// Only the fields the update sets change; the rest keep what the container was created or last updated with.
	stored := &runtimeapi.LinuxContainerResources{}
	if len(c.ResourcesPB) > 0 {
		if err := proto.Unmarshal(c.ResourcesPB, stored); err != nil {
			return fmt.Errorf("container %s: stored resources: %w", c.ID, err)
		}
	}
	merged := mergeResources(stored, r)
	res, err := oci.Resources(merged)
	if err != nil {
		return err
	}
	if res.HugepageLimits, err = m.cfg.Hugetlb.Filter(res.HugepageLimits); err != nil {
		return err
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return err
	}
	if err := rt.Update(ctx, c.ID, res); err != nil {
		return fmt.Errorf("update container %s: %w", c.ID, err)
	}
	b, _ := proto.Marshal(merged)
	_, err = m.cfg.Store.UpdateContainer(c.ID, func(x *store.Container) error { x.ResourcesPB = b; return nil })
	return err
}

// ReopenLog makes conmon reopen the container's log file (after kubelet rotated it).
func (m *Manager) ReopenLog(ctx context.Context, id string) error {
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return err
	}
	if c.State != store.ContainerRunning {
		return errdefs.FailedPrecondition("container %s is not running", c.ID)
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return err
	}
	return rt.ReopenLog(ctx, c.ID)
}

// ExecSyncResult is the outcome of ExecSync.
type ExecSyncResult struct {
	Stdout, Stderr []byte
	ExitCode       int32
}

// MaxExecOutput caps each of stdout and stderr of ExecSync.
const MaxExecOutput = 16 << 20

// ExecSync runs cmd in a running container and returns its output; timeout 0 means none.
func (m *Manager) ExecSync(ctx context.Context, id string, cmd []string, timeout time.Duration) (*ExecSyncResult, error) {
	if len(cmd) == 0 {
		return nil, errdefs.InvalidArgument("exec command must not be empty")
	}
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return nil, err
	}
	if c.State != store.ContainerRunning {
		return nil, errdefs.FailedPrecondition("container %s is not running", c.ID)
	}
	proc, err := m.processFor(&c, cmd, false)
	if err != nil {
		return nil, err
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return nil, err
	}
	res, err := rt.ExecSync(ctx, c.ID, proc, timeout, MaxExecOutput)
	if err != nil {
		return nil, err
	}
	return &ExecSyncResult{Stdout: res.Stdout, Stderr: res.Stderr, ExitCode: int32(res.ExitCode)}, nil
}

// processFor returns the container's process spec with args replaced: same user, env, cwd, capabilities.
func (m *Manager) processFor(c *store.Container, cmd []string, tty bool) (*specs.Process, error) {
	data, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read container spec: %w", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		return nil, fmt.Errorf("parse container spec: %w", err)
	}
	if spec.Process == nil {
		return nil, fmt.Errorf("container %s has no process spec", c.ID)
	}
	p := *spec.Process
	p.Args = cmd
	p.Terminal = tty
	p.ConsoleSize = nil
	return &p, nil
}
