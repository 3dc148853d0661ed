package image

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/snapshotter"
	digest "github.com/opencontainers/go-digest"
)

// gcLocked removes, with gcMu held exclusively:
//   - blobs of the content store that no image record lists;
//   - committed layer snapshots (label LabelLayer) whose chain ID no image uses, leaf first; a snapshot that
//     still has children (another image's layer above it, or a container's snapshot) stays, and so does one
//     the snapshotter refuses to remove with FailedPrecondition (in use);
//   - temporary unpack snapshots (no pull is running while gcMu is held).
func (s *Service) gcLocked(ctx context.Context) error {
	imgs, err := s.meta.list()
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	blobs := map[digest.Digest]bool{}
	chains := map[string]bool{}
	for _, img := range imgs {
		blobs[digest.Digest(img.ID)] = true
		blobs[img.Manifest.Digest] = true
		for _, b := range img.Blobs {
			blobs[digest.Digest(b)] = true
		}
		for _, l := range img.Layers {
			blobs[l.Digest] = true
			chains[l.ChainID.String()] = true
		}
	}
	var errs []error
	err = s.content.Walk(func(d digest.Digest, _ int64) error {
		if !blobs[d] {
			if err := s.content.Delete(d); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}

	children := map[string]int{}
	parents := map[string]string{}
	var candidates []string
	err = s.sn.Walk(ctx, func(_ context.Context, info snapshotter.Info) error {
		if info.Parent != "" {
			children[info.Parent]++
		}
		parents[info.Key] = info.Parent
		switch {
		case info.Kind == snapshotter.KindCommitted && info.Labels[LabelLayer] != "" && !chains[info.Key]:
			candidates = append(candidates, info.Key)
		case info.Kind == snapshotter.KindActive && info.Labels[labelUnpack] != "" && strings.HasPrefix(info.Key, unpackKeyPrefix):
			candidates = append(candidates, info.Key)
		}
		return nil
	})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("gc: walk snapshots: %w", err))...)
	}
	for progress := true; progress && len(candidates) > 0; {
		progress = false
		rest := candidates[:0]
		for _, key := range candidates {
			if children[key] > 0 {
				rest = append(rest, key)
				continue
			}
			err := s.sn.Remove(ctx, key)
			switch {
			case err == nil || errdefs.IsNotFound(err):
				progress = true
				if p := parents[key]; p != "" {
					children[p]--
				}
			case errors.Is(err, errdefs.ErrFailedPrecondition):
				// in use: keep it (and therefore its parents)
			default:
				errs = append(errs, fmt.Errorf("gc: remove snapshot %s: %w", key, err))
			}
		}
		candidates = rest
	}
	return errors.Join(errs...)
}
