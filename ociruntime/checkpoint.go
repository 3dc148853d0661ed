package ociruntime

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/noded/noded/errdefs"
)

// CheckpointOpts describes a CRIU checkpoint of a running container.
type CheckpointOpts struct {
	ImagePath string // absolute directory that receives CRIU's image files
	WorkPath  string // absolute directory for CRIU's logs and work files
	// LeaveRunning keeps the container running after the dump (kubelet's forensic checkpoint).
	LeaveRunning bool
}

// Checkpointer is implemented by runtimes that can checkpoint a container with CRIU.
type Checkpointer interface {
	Checkpoint(ctx context.Context, id string, o CheckpointOpts) error
}

// Checkpoint runs `<runtime> checkpoint`, which drives CRIU.
func (r *CLI) Checkpoint(ctx context.Context, id string, o CheckpointOpts) error {
	if err := checkID(id); err != nil {
		return err
	}
	if !filepath.IsAbs(o.ImagePath) || !filepath.IsAbs(o.WorkPath) {
		return errdefs.InvalidArgument("checkpoint %s: image and work paths must be absolute", id)
	}
	args := []string{"checkpoint", "--image-path", o.ImagePath, "--work-path", o.WorkPath}
	if o.LeaveRunning {
		args = append(args, "--leave-running")
	}
	_, err := r.run(ctx, nil, append(args, id)...)
	return err
}

// CRIUCheck reports whether CRIU can checkpoint on this host: nil when `criu check` (criu found in PATH)
// passes, else an error naming the cause (CRIU missing, or the failed checks it printed).
func CRIUCheck(ctx context.Context) error {
	path, err := exec.LookPath("criu")
	if err != nil {
		return fmt.Errorf("criu is not installed (not found in PATH)")
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "check")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2048 {
			msg = msg[len(msg)-2048:]
		}
		if msg == "" {
			return fmt.Errorf("%s check: %w", path, err)
		}
		return fmt.Errorf("%s check: %w: %s", path, err, msg)
	}
	return nil
}
