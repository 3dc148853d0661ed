package snapshotter

import (
	"context"
	"io"
)

// DirectApplier is implemented by snapshotters that can unpack a layer straight into an active snapshot's
// storage, without mounting it.
type DirectApplier interface {
	// ApplyLayer unpacks the uncompressed layer tar r into the active snapshot key and returns the number of
	// bytes of file content written. A malformed or malicious layer fails with an errdefs.InvalidArgument
	// error; the caller then removes the snapshot.
	ApplyLayer(ctx context.Context, key string, r io.Reader) (int64, error)
}

// FsUsager is implemented by snapshotters that can report the usage of their whole storage (ImageFsInfo).
type FsUsager interface {
	// Root is the directory holding the snapshotter's data (the image filesystem's mount point identifier).
	Root() string
	// DiskUsage returns the bytes and inodes used beneath Root.
	DiskUsage(ctx context.Context) (Usage, error)
}

// LayerApplier is implemented by snapshotters that can unpack a layer before the layers below it are
// committed, so that the layers of one image unpack in parallel (each into a snapshot prepared without a
// parent, committed on top of its parent once that exists).
type LayerApplier interface {
	// ApplyLayerOnto unpacks the uncompressed layer tar r into the active snapshot key, prepared without a
	// parent, as the layer above the committed snapshot parent ("" for a bottom layer). The layers below
	// are read only if the tar needs them (a hard link to a file of a lower layer, a directory the tar does
	// not list); before reading them it calls waitParent, which must return nil only once parent is
	// committed. Errors as for DirectApplier. Nothing is synced: see Sync.
	ApplyLayerOnto(ctx context.Context, key, parent string, waitParent func() error, r io.Reader) (int64, error)
	// CommitOnto commits the active snapshot key, prepared without a parent, as name on top of the committed
	// snapshot parent.
	CommitOnto(ctx context.Context, name, key, parent string, opts ...Opt) error
	// Sync makes everything applied so far durable (one call for many layers, not one per file or layer).
	Sync(ctx context.Context) error
}
