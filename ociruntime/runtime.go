// Package ociruntime runs containers through an OCI runtime binary (runc or crun) whose
// container processes are watched by conmon, so that containers and their CRI logs outlive
// a restart of noded.
//
// Layout on disk for a CLI configured with Root, ExitDir and PersistRoot:
//
//	<Root>/<id>/...               runtime state (runc/crun --root)
//	<ExitDir>/<id>                exit code written by conmon when the container exits
//	<PersistRoot>/<id>/           conmon's persist dir and working directory:
//	    exit, oom                 exit code copy; "oom" exists after an OOM kill
//	    conmon.pid, pidfile       conmon's and the container init's host PIDs
//	    meta.json                 bundle and log path, for ReopenLog/Resize/AttachSocketPath
//	<Bundle>/ctl, <Bundle>/winsz  conmon's control fifos
//	<Bundle>/attach               attach socket (or <SocketDir>/<id>/attach when SocketDir is set)
//
// Container processes are never children of noded: conmon double-forks and starts its own
// session. Exits are detected with a Watcher (inotify on ExitDir), not by polling.
package ociruntime

import (
	"context"
	"fmt"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/opencontainers/runtime-spec/specs-go/features"
)

// Status is the OCI status of a container as reported by the runtime.
type Status string

// OCI container statuses.
const (
	StatusCreating Status = "creating"
	StatusCreated  Status = "created"
	StatusRunning  Status = "running"
	StatusPaused   Status = "paused"
	StatusStopped  Status = "stopped"
)

// State is the runtime's view of a container (`<runtime> state`).
type State struct {
	ID      string
	Status  Status
	Pid     int // host PID of the container's init process; 0 once stopped
	Bundle  string
	Created time.Time
}

// CreateOpts describes a container to create under conmon. The bundle's config.json is
// written by the caller before Create (before PendingCreate.Run with Spawn).
type CreateOpts struct {
	ID     string // container ID: [A-Za-z0-9_.-], no leading dot
	Name   string // human name passed to conmon (-n); defaults to ID
	Bundle string // absolute bundle directory holding config.json

	// LogPath is the CRI log file (k8s-file format). Empty disables logging.
	// It must not contain ':' (conmon's option syntax).
	LogPath string
	// LogSizeMax truncates (re-creates) the log file once it would exceed this many bytes; 0 = unlimited.
	LogSizeMax int64

	Terminal  bool // process.terminal is true in config.json; conmon allocates the console (-t)
	Stdin     bool // keep a stdin pipe open for attach (-i)
	StdinOnce bool // close stdin after the first attach client detaches (no --leave-stdin-open)

	// Timeout bounds waiting for conmon to report the container PID; 0 means DefaultCreateTimeout.
	// The context's deadline also applies.
	Timeout time.Duration
}

// DefaultCreateTimeout bounds Create when CreateOpts.Timeout is zero.
const DefaultCreateTimeout = 4 * time.Minute

// ExecResult is the outcome of ExecSync.
type ExecResult struct {
	Stdout, Stderr                   []byte
	ExitCode                         int
	StdoutTruncated, StderrTruncated bool // output beyond the limit was discarded
}

// Features is the parsed, cached output of `<runtime> features`.
type Features struct {
	// Raw is the runtime's full answer; nil when the runtime has no `features` command
	// (e.g. crun < 1.9), in which case every flag below is false.
	Raw               *features.Features
	RecursiveReadOnly bool // mountOptions contains "rro"
	IDMapMounts       bool // linux.mountExtensions.idmap.enabled
	UserNamespaces    bool // linux.namespaces contains "user"
	Seccomp           bool // linux.seccomp.enabled
}

// Spawner is a Runtime that can start conmon before the bundle is complete (CLI.Spawn): Create split in two, so
// that conmon's own start overlaps the caller's work on the bundle.
type Spawner interface {
	Spawn(ctx context.Context, opts CreateOpts) (Pending, error)
}

// Pending is a create Spawn started: Run lets it go ahead and returns the container init's host PID (on failure
// it removes what it made); Abort stops it. Exactly one of the two must be called.
type Pending interface {
	Run(ctx context.Context) (int, error)
	Abort()
}

// Runtime runs containers through an OCI runtime binary with conmon as their monitor.
// Every method is safe for concurrent use. Methods taking an ID return an error of kind
// errdefs.ErrNotFound when the runtime does not know the container.
type Runtime interface {
	// Name is the handler name (e.g. "runc", "crun").
	Name() string
	// Features reports what the runtime binary supports; the answer is cached.
	Features(ctx context.Context) (*Features, error)

	// Create starts conmon, which runs `<runtime> create`; it returns the container init's host PID.
	Create(ctx context.Context, opts CreateOpts) (int, error)
	// Start runs the user process of a created container.
	Start(ctx context.Context, id string) error
	// Kill sends sig to the init process, or to every process of the container when all is set.
	// Killing a container that is not running is an error of kind errdefs.ErrFailedPrecondition.
	Kill(ctx context.Context, id string, sig syscall.Signal, all bool) error
	// Delete removes the container from the runtime and removes conmon's files (exit file, persist dir).
	// force kills a running container first. Deleting an unknown container is not an error.
	// Read ExitStatus/OOMKilled before Delete.
	Delete(ctx context.Context, id string, force bool) error
	// State queries the runtime.
	State(ctx context.Context, id string) (State, error)
	// Update changes the container's cgroup resources.
	Update(ctx context.Context, id string, res *specs.LinuxResources) error
	// Pause freezes every process of the container; Resume thaws them.
	Pause(ctx context.Context, id string) error
	Resume(ctx context.Context, id string) error
	// ExecSync runs proc in the container and waits for it. timeout 0 means none (besides ctx).
	// At the deadline the process (and everything it spawned) is killed and the error wraps
	// ErrExecTimeout (which also matches context.DeadlineExceeded). Each output stream keeps at
	// most outputLimit bytes (0 = DefaultExecOutputLimit); the rest is discarded and flagged.
	ExecSync(ctx context.Context, id string, proc *specs.Process, timeout time.Duration, outputLimit int) (*ExecResult, error)

	// ExitStatus reads the exit code conmon recorded and when it was written; ErrNotFound if the
	// container has not exited (or is unknown).
	ExitStatus(id string) (code int, exitedAt time.Time, err error)
	// OOMKilled reports whether conmon saw an OOM kill in the container's memory cgroup.
	OOMKilled(id string) bool
	// ReopenLog asks conmon to reopen the container's log file (after kubelet rotated it) and
	// waits until the new file exists.
	ReopenLog(ctx context.Context, id string) error
	// Resize sets the container's terminal size (only for Terminal containers).
	Resize(ctx context.Context, id string, width, height uint16) error
	// AttachSocketPath is conmon's SOCK_SEQPACKET attach socket for the container.
	AttachSocketPath(id string) (string, error)
	// ConmonPID is the PID of the conmon watching the container.
	ConmonPID(id string) (int, error)
}

// ErrExecTimeout is wrapped by ExecSync's error when the exec'd process hit its timeout.
// errors.Is(err, context.DeadlineExceeded) is also true, so errdefs maps it to DeadlineExceeded.
var ErrExecTimeout = fmt.Errorf("exec timed out: %w", context.DeadlineExceeded)
