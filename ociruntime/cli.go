package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"

	"github.com/noded/noded/errdefs"
)

// Config configures a CLI runtime.
type Config struct {
	Name string // handler name, e.g. "runc"
	Path string // runtime binary, e.g. /usr/local/sbin/runc

	// Root is the runtime's state directory (--root), private to noded, e.g. <state>/runc.
	Root string
	// SystemdCgroup passes --systemd-cgroup to the runtime (and -s to conmon).
	SystemdCgroup bool

	ConmonPath string // defaults to /usr/bin/conmon
	// ExitDir receives one file per exited container, named by ID (watch it with a Watcher).
	ExitDir string
	// PersistRoot holds one directory per container (conmon's persist dir and working dir).
	PersistRoot string
	// SocketDir, when set, is conmon's --socket-dir-path: attach sockets are reached through
	// <SocketDir>/<id>/attach (short paths). When empty, conmon uses --full-attach and the
	// socket is <bundle>/attach.
	SocketDir string
	// ConmonLogLevel is conmon's --log-level (error, warn, info, debug); defaults to "error".
	ConmonLogLevel string
	// BeforeConmonStart, if set, is called with the PID of the new conmon process while conmon
	// waits on its start pipe, before it forks anything (e.g. to move it into a cgroup).
	BeforeConmonStart func(conmonPID int) error
	// Observe, if set, receives the latency of every runtime call (metrics).
	Observe Observer
	// CommandTimeout bounds one runtime command (state, start, kill, delete, update, ...) when the caller's
	// context has no deadline, so a runtime stuck on a frozen cgroup or a dead FUSE mount cannot hang an RPC
	// forever; 0 means DefaultCommandTimeout.
	CommandTimeout time.Duration
}

// DefaultCommandTimeout bounds a runtime command whose caller set no deadline.
const DefaultCommandTimeout = 2 * time.Minute

// CLI is a Runtime driving a runc-compatible binary (runc, crun) through its command line.
type CLI struct {
	cfg Config

	featMu sync.Mutex
	feat   *Features
}

var (
	_ Runtime = (*CLI)(nil)
	_ Spawner = (*CLI)(nil)
)

// DefaultConmonPath is used when Config.ConmonPath is empty.
const DefaultConmonPath = "/usr/bin/conmon"

// New validates cfg and creates the runtime's directories.
func New(cfg Config) (*CLI, error) {
	if cfg.Name == "" {
		cfg.Name = filepath.Base(cfg.Path)
	}
	if cfg.ConmonPath == "" {
		cfg.ConmonPath = DefaultConmonPath
	}
	if cfg.ConmonLogLevel == "" {
		cfg.ConmonLogLevel = "error"
	}
	if cfg.CommandTimeout <= 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	for what, p := range map[string]string{"runtime path": cfg.Path, "conmon path": cfg.ConmonPath, "root": cfg.Root, "exit dir": cfg.ExitDir, "persist root": cfg.PersistRoot} {
		if p == "" || !filepath.IsAbs(p) {
			return nil, errdefs.InvalidArgument("ociruntime: %s %q must be an absolute path", what, p)
		}
	}
	if cfg.SocketDir != "" && !filepath.IsAbs(cfg.SocketDir) {
		return nil, errdefs.InvalidArgument("ociruntime: socket dir %q must be absolute", cfg.SocketDir)
	}
	for _, bin := range []string{cfg.Path, cfg.ConmonPath} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, errdefs.FailedPrecondition("ociruntime: %s is not executable: %v", bin, err)
		}
	}
	for _, d := range []string{cfg.Root, cfg.ExitDir, cfg.PersistRoot, cfg.SocketDir} {
		if d == "" {
			continue
		}
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("ociruntime: create %s: %w", d, err)
		}
	}
	return &CLI{cfg: cfg}, nil
}

// Name returns the handler name.
func (r *CLI) Name() string { return r.cfg.Name }

// Path returns the runtime binary.
func (r *CLI) Path() string { return r.cfg.Path }

var validID = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9_.-]*$`)

func checkID(id string) error {
	if !validID.MatchString(id) || len(id) > 1024 {
		return errdefs.InvalidArgument("ociruntime: invalid container id %q", id)
	}
	return nil
}

// globalArgs are the runtime's options placed before the subcommand.
func (r *CLI) globalArgs() []string {
	args := []string{"--root", r.cfg.Root}
	if r.cfg.SystemdCgroup {
		args = append(args, "--systemd-cgroup")
	}
	return args
}

// run executes `<runtime> <global args> args...` and returns its stdout. Failures carry the
// runtime's stderr and are classified by classify.
func (r *CLI) run(ctx context.Context, stdin []byte, args ...string) (_ []byte, retErr error) {
	defer r.observed(args[0], time.Now(), &retErr)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.cfg.CommandTimeout)
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, r.cfg.Path, append(r.globalArgs(), args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s %s: %w", r.cfg.Name, args[0], ctxErr)
		}
		return nil, classify(fmt.Sprintf("%s %s", r.cfg.Name, strings.Join(args, " ")), runtimeMessage(stderr.Bytes()), err)
	}
	return stdout.Bytes(), nil
}

// runtimeMessage extracts the human message from runc's logrus lines (`level=error msg="..."`)
// or returns the trimmed text.
func runtimeMessage(stderr []byte) string {
	s := strings.TrimSpace(string(stderr))
	var msgs []string
	for line := range strings.SplitSeq(s, "\n") {
		if i := strings.Index(line, `msg="`); i >= 0 {
			if m, err := strconv.Unquote(strings.TrimSpace(line[i+4:])); err == nil {
				msgs = append(msgs, m)
				continue
			}
		}
		if line = strings.TrimSpace(line); line != "" {
			msgs = append(msgs, line)
		}
	}
	return strings.Join(msgs, "; ")
}

// classify turns a runtime failure into an errdefs kind where the caller must tell them apart.
func classify(op, msg string, err error) error {
	low := strings.ToLower(msg)
	switch {
	case strings.Contains(low, "does not exist"), strings.Contains(low, "container not found"),
		strings.Contains(low, "no such container"):
		return fmt.Errorf("%s: %w", op, errdefs.NotFound("%s", msg))
	case strings.Contains(low, "not running"), strings.Contains(low, "process already finished"),
		strings.Contains(low, "is stopped"), strings.Contains(low, "not stopped"),
		strings.Contains(low, "cannot delete running container"), strings.Contains(low, "not paused"),
		strings.Contains(low, "already running"), strings.Contains(low, "cannot start"):
		return fmt.Errorf("%s: %w", op, errdefs.FailedPrecondition("%s", msg))
	case strings.Contains(low, "already exists"):
		return fmt.Errorf("%s: %w", op, errdefs.AlreadyExists("%s", msg))
	}
	if msg == "" {
		return fmt.Errorf("%s: %w", op, err)
	}
	return fmt.Errorf("%s: %s: %w", op, msg, err)
}

// Features runs `<runtime> features` once and caches a successful answer.
func (r *CLI) Features(ctx context.Context) (*Features, error) {
	r.featMu.Lock()
	defer r.featMu.Unlock()
	if r.feat != nil {
		return r.feat, nil
	}
	cmd := exec.CommandContext(ctx, r.cfg.Path, "features")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ctx.Err() == nil {
			// The binary ran but has no `features` command (crun < 1.9): nothing is known.
			r.feat = &Features{}
			return r.feat, nil
		}
		return nil, fmt.Errorf("%s features: %w", r.cfg.Name, err)
	}
	f, err := parseFeatures(out)
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", r.cfg.Name, err)
	}
	r.feat = f
	return f, nil
}

func parseFeatures(data []byte) (*Features, error) {
	var raw features.Features
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse features JSON: %w", err)
	}
	f := &Features{Raw: &raw, RecursiveReadOnly: slices.Contains(raw.MountOptions, "rro")}
	if l := raw.Linux; l != nil {
		f.UserNamespaces = slices.Contains(l.Namespaces, "user")
		if l.Seccomp != nil && l.Seccomp.Enabled != nil {
			f.Seccomp = *l.Seccomp.Enabled
		}
		if l.MountExtensions != nil && l.MountExtensions.IDMap != nil && l.MountExtensions.IDMap.Enabled != nil {
			f.IDMapMounts = *l.MountExtensions.IDMap.Enabled
		}
	}
	return f, nil
}

// Start runs `<runtime> start`.
func (r *CLI) Start(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, nil, "start", id)
	return err
}

// Kill runs `<runtime> kill [--all] id sig`.
func (r *CLI) Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	args := []string{"kill"}
	if all {
		args = append(args, "--all")
	}
	_, err := r.run(ctx, nil, append(args, id, strconv.Itoa(int(sig)))...)
	return err
}

// Delete runs `<runtime> delete [--force]`, waits for conmon to finish and removes its files.
func (r *CLI) Delete(ctx context.Context, id string, force bool) error {
	if err := checkID(id); err != nil {
		return err
	}
	args := []string{"delete"}
	if force {
		args = append(args, "--force")
	}
	if _, err := r.run(ctx, nil, append(args, id)...); err != nil && !errdefs.IsNotFound(err) {
		return err
	}
	// conmon writes the exit file after the container is reaped; let it finish so no file
	// appears after the cleanup below.
	if pid, err := r.ConmonPID(id); err == nil {
		if err := waitProcessExit(ctx, pid, 10*time.Second); err != nil {
			return fmt.Errorf("delete %s: wait for conmon %d: %w", id, pid, err)
		}
	}
	if err := os.Remove(r.exitFile(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	if err := os.RemoveAll(r.persistDir(id)); err != nil {
		return fmt.Errorf("delete %s: %w", id, err)
	}
	return nil
}

type ociState struct {
	ID      string    `json:"id"`
	Pid     int       `json:"pid"`
	Status  string    `json:"status"`
	Bundle  string    `json:"bundle"`
	Created time.Time `json:"created"`
}

// State runs `<runtime> state`.
func (r *CLI) State(ctx context.Context, id string) (State, error) {
	if err := checkID(id); err != nil {
		return State{}, err
	}
	out, err := r.run(ctx, nil, "state", id)
	if err != nil {
		return State{}, err
	}
	var s ociState
	if err := json.Unmarshal(out, &s); err != nil {
		return State{}, fmt.Errorf("%s state %s: parse: %w", r.cfg.Name, id, err)
	}
	return State{ID: s.ID, Status: Status(s.Status), Pid: s.Pid, Bundle: s.Bundle, Created: s.Created}, nil
}

// Update runs `<runtime> update --resources -` with res as JSON.
func (r *CLI) Update(ctx context.Context, id string, res *specs.LinuxResources) error {
	if err := checkID(id); err != nil {
		return err
	}
	if res == nil {
		return errdefs.InvalidArgument("ociruntime: update %s: nil resources", id)
	}
	data, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("update %s: %w", id, err)
	}
	_, err = r.run(ctx, data, "update", "--resources", "-", id)
	return err
}

// Pause runs `<runtime> pause`.
func (r *CLI) Pause(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, nil, "pause", id)
	return err
}

// Resume runs `<runtime> resume`.
func (r *CLI) Resume(ctx context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	_, err := r.run(ctx, nil, "resume", id)
	return err
}
