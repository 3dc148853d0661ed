package testimage

import (
	"context"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func reference(registryHost, repoTag string) (name.Reference, error) {
	ref, err := name.ParseReference(registryHost+"/"+repoTag, name.Insecure, name.StrictValidation)
	if err != nil {
		return nil, fmt.Errorf("parsing %s/%s: %w", registryHost, repoTag, err)
	}
	return ref, nil
}

// Push uploads img to registryHost (host:port, plain HTTP allowed) as
// repoTag ("repo/path:tag") and returns its manifest digest. opts may add
// authentication or a transport.
func Push(ctx context.Context, registryHost, repoTag string, img v1.Image, opts ...remote.Option) (v1.Hash, error) {
	ref, err := reference(registryHost, repoTag)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(ref, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing %s: %w", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest of %s: %w", ref, err)
	}
	return d, nil
}

// PushIndex uploads an image index and all its images as repoTag and returns
// the index digest.
func PushIndex(ctx context.Context, registryHost, repoTag string, idx v1.ImageIndex, opts ...remote.Option) (v1.Hash, error) {
	ref, err := reference(registryHost, repoTag)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.WriteIndex(ref, idx, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1.Hash{}, fmt.Errorf("pushing index %s: %w", ref, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return v1.Hash{}, fmt.Errorf("digest of %s: %w", ref, err)
	}
	return d, nil
}
