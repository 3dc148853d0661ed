package testimage

import (
	"fmt"
	"os"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"

	"github.com/noded/noded/errdefs"
)

// refNameAnnotation names an image in an OCI image layout's index.
const refNameAnnotation = "org.opencontainers.image.ref.name"

// WriteLayout writes images (by name, for example TestBusybox) into a fresh OCI image layout at dir, for a machine
// that cannot build them (a test guest without Debian's package tools or network).
func WriteLayout(dir string, images map[string]v1.Image) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("create image layout %s: %w", dir, err)
	}
	names := make([]string, 0, len(images))
	for n := range images {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := p.AppendImage(images[n], layout.WithAnnotations(map[string]string{refNameAnnotation: n})); err != nil {
			return fmt.Errorf("write %s to %s: %w", n, dir, err)
		}
	}
	return nil
}

// ReadLayout returns the image named name from the OCI image layout at dir (written by WriteLayout).
func ReadLayout(dir, name string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("open image layout %s: %w", dir, err)
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return nil, err
	}
	m, err := idx.IndexManifest()
	if err != nil {
		return nil, err
	}
	for _, d := range m.Manifests {
		if d.Annotations[refNameAnnotation] == name {
			return idx.Image(d.Digest)
		}
	}
	return nil, errdefs.NotFound("image %s is not in the layout at %s", name, dir)
}
