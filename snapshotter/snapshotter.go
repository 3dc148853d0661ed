// Package snapshotter defines noded's snapshot store: committed, read-only layers keyed by chain ID, shared by
// every container of an image, and one writable snapshot per container on top of them.
//
// The model follows the well-known snapshot lifecycle: Prepare makes an active (writable) snapshot on a
// parent, View a read-only one, Commit turns an active snapshot into a committed one under a new name, and
// Remove deletes a snapshot that has no children.
package snapshotter

import (
	"context"
	"time"
)

// Kind is the state of a snapshot.
type Kind int

// Snapshot kinds.
const (
	KindUnknown Kind = iota
	KindView
	KindActive
	KindCommitted
)

func (k Kind) String() string {
	switch k {
	case KindView:
		return "View"
	case KindActive:
		return "Active"
	case KindCommitted:
		return "Committed"
	}
	return "Unknown"
}

// Info describes a snapshot.
type Info struct {
	Key     string // name of the snapshot (chain ID for committed layers, a container ID for active ones)
	Parent  string // key of the parent committed snapshot, "" for a base layer
	Kind    Kind
	Created time.Time
	Labels  map[string]string
}

// Usage is the disk usage of one snapshot's own data (not its parents').
type Usage struct {
	Size   int64 // bytes
	Inodes int64
}

// Mount is one filesystem mount needed to assemble a snapshot.
type Mount struct {
	Type    string // "overlay" or "bind"
	Source  string
	Options []string // may contain relative lowerdir paths when Dir is set
	// Dir, when set, is the directory the mount must be made from (relative paths in Options resolve
	// against it); it keeps the option string of deep images under the kernel's page-size limit.
	Dir string
}

// Opt configures a snapshot at creation.
type Opt func(*Info)

// WithLabels sets labels on the snapshot being created or committed.
func WithLabels(labels map[string]string) Opt {
	return func(i *Info) {
		if i.Labels == nil {
			i.Labels = map[string]string{}
		}
		for k, v := range labels {
			i.Labels[k] = v
		}
	}
}

// Snapshotter stores layered filesystems. Implementations are safe for concurrent use.
// Errors use the kinds of package errdefs (NotFound, AlreadyExists, FailedPrecondition, InvalidArgument).
type Snapshotter interface {
	// Stat returns the info of the snapshot key.
	Stat(ctx context.Context, key string) (Info, error)
	// Prepare creates an active snapshot key on parent ("" for none) and returns the mounts of its filesystem.
	Prepare(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// View creates a read-only snapshot key of parent and returns its mounts.
	View(ctx context.Context, key, parent string, opts ...Opt) ([]Mount, error)
	// Mounts returns the mounts of an active or view snapshot.
	Mounts(ctx context.Context, key string) ([]Mount, error)
	// Commit turns the active snapshot key into the committed snapshot name.
	Commit(ctx context.Context, name, key string, opts ...Opt) error
	// Remove deletes the snapshot key; it fails with FailedPrecondition while it has children.
	Remove(ctx context.Context, key string) error
	// Usage returns the disk usage of the snapshot's own data.
	Usage(ctx context.Context, key string) (Usage, error)
	// Walk calls fn for every snapshot.
	Walk(ctx context.Context, fn func(context.Context, Info) error) error
	// Close releases the snapshotter's resources.
	Close() error
}
