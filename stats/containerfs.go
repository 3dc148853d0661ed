package stats

import (
	"context"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/store"
)

// ContainerFsUsage is the usage of the container filesystem, ImageFsInfo's container_filesystems: the writable
// layers of all containers (those that have a snapshot), on the snapshotter's root. Image layers are not in it
// (they are the image filesystem's). Layer usage comes from the same cache as ContainerStats; the timestamp is that of the oldest usage summed.
func (p *Provider) ContainerFsUsage(ctx context.Context) (*runtimeapi.FilesystemUsage, error) {
	now := p.cfg.Now()
	at := now // the time of the oldest usage summed: the sum is as old as it
	var bytes, inodes uint64
	for _, c := range p.cfg.Store.ContainerRecords("") {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c.State == store.ContainerCreating {
			continue
		}
		if e, ok := p.layerUsage(ctx, c, now); ok {
			bytes += uint64(max(e.u.Size, 0))
			inodes += uint64(max(e.u.Inodes, 0))
			if e.t.Before(at) {
				at = e.t
			}
		}
	}
	p.maybePrune(false)
	return &runtimeapi.FilesystemUsage{
		Timestamp:  at.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: p.cfg.SnapshotRoot},
		UsedBytes:  u64(bytes),
		InodesUsed: u64(inodes),
	}, nil
}
