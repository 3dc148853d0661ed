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
