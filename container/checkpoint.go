package container

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/ociruntime"
	"github.com/noded/noded/store"
)

// checkpointMeta is the config.dump of a checkpoint archive: what a restore would need to know of the container.
type checkpointMeta struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	SandboxID    string `json:"sandboxID"`
	ImageName    string `json:"imageName"`
	ImageID      string `json:"imageID"`
	ImageRef     string `json:"imageRef"`
	Runtime      string `json:"runtime"`
	CreatedAt    int64  `json:"createdAt"`
	CheckpointAt int64  `json:"checkpointAt"`
}

// Checkpoint writes a checkpoint archive of a running container to location (a tar with the CRIU images under
// checkpoint/, the OCI spec as spec.dump and the container's metadata as config.dump); the container keeps
// running, as kubelet's checkpoint API expects. Where CRIU cannot checkpoint on this host it fails with
// FailedPrecondition naming the cause, before touching the container. timeout 0 means none (besides ctx).
func (m *Manager) Checkpoint(ctx context.Context, id, location string, timeout time.Duration) error {
	if id == "" {
		return errdefs.InvalidArgument("container ID is required")
	}
	if location == "" || !filepath.IsAbs(location) {
		return errdefs.InvalidArgument("checkpoint location %q must be an absolute path", location)
	}
	c, err := m.cfg.Store.Container(id)
	if err != nil {
		return err
	}
	if c.State != store.ContainerRunning {
		return errdefs.FailedPrecondition("container %s is %s: only a running container can be checkpointed", c.ID, c.State)
	}
	rt, err := m.runtime(c.Runtime)
	if err != nil {
		return err
	}
	cp, ok := rt.(ociruntime.Checkpointer)
	if !ok {
		return errdefs.FailedPrecondition("runtime handler %q cannot checkpoint containers", c.Runtime)
	}
	probe := m.cfg.CheckpointProbe
	if probe == nil {
		probe = ociruntime.CRIUCheck
	}
	if err := probe(ctx); err != nil {
		return errdefs.FailedPrecondition("checkpointing needs CRIU, which cannot checkpoint on this host: %v", err)
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	unlock := m.locks.Lock(c.ID)
	defer unlock()

	work, err := os.MkdirTemp(c.Bundle, "checkpoint-")
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.ID, err)
	}
	defer os.RemoveAll(work)
	images := filepath.Join(work, "archive", "checkpoint")
	if err := os.MkdirAll(images, 0o700); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.ID, err)
	}
	if err := cp.Checkpoint(ctx, c.ID, ociruntime.CheckpointOpts{
		ImagePath: images, WorkPath: work, LeaveRunning: true,
	}); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.ID, err)
	}
	spec, err := os.ReadFile(filepath.Join(c.Bundle, "config.json"))
	if err != nil {
		return fmt.Errorf("checkpoint %s: read spec: %w", c.ID, err)
	}
	meta, err := json.Marshal(checkpointMeta{
		ID: c.ID, Name: c.Config.GetMetadata().GetName(), SandboxID: c.SandboxID, ImageName: c.ImageName,
		ImageID: c.ImageID, ImageRef: c.ImageRef, Runtime: c.Runtime, CreatedAt: c.CreatedAt,
		CheckpointAt: time.Now().UnixNano(),
	})
	if err != nil {
		return err
	}
	for name, data := range map[string][]byte{"spec.dump": spec, "config.dump": meta} {
		if err := os.WriteFile(filepath.Join(work, "archive", name), data, 0o600); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.ID, err)
		}
	}
	if err := writeTar(filepath.Join(work, "archive"), location); err != nil {
		return fmt.Errorf("checkpoint %s: write archive %s: %w", c.ID, location, err)
	}
	return nil
}

// writeTar writes the tree under dir as a tar file at dst, atomically (a temporary file renamed into place).
func writeTar(dir, dst string) (retErr error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-")
	if err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == dir {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if !info.Mode().IsRegular() && !info.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.IsDir() {
			return nil
		}
		src, err := os.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	if err := errors.Join(tw.Close(), f.Sync()); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dst)
}
