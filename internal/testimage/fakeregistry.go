package testimage

import (
	"fmt"
	"io"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/errdefs"
)

// FakeRegistryDir is the directory agnhost's fake-registry-server
// (k8s.io/kubernetes/test/images/agnhost/fakeregistryserver) serves images from.
const FakeRegistryDir = "/var/registry"

// AddFakeRegistryImage writes idx into t the way agnhost's fake-registry-server reads it, so that it serves
// idx as name:tag (name is one path element, as the server takes only the first one): under dir/name,
// manifests/TAG holds the index's digest (the server redirects the tag to it), the index and each manifest
// are at manifests/sha256/<first two hex digits>/<hex>/data, each config and layer at
// blobs/sha256/<first two>/<hex>/data. Files are 0644 and directories 0755, readable by the non-root user
// the e2e specs run the server as (5123).
func AddFakeRegistryImage(t *FS, dir, name, tag string, idx v1.ImageIndex) error {
	if name == "" || strings.Contains(name, "/") || tag == "" || strings.Contains(tag, "/") || strings.HasPrefix(tag, "sha256:") {
		return errdefs.InvalidArgument("fake registry image %q:%q: want one path element and a tag", name, tag)
	}
	root := path.Join(dir, name)
	put := func(kind string, d v1.Hash, data []byte) error {
		if d.Algorithm != "sha256" || len(d.Hex) < 2 {
			return errdefs.InvalidArgument("fake registry: digest %s is not sha256", d)
		}
		t.WriteFile(path.Join(root, kind, d.Algorithm, d.Hex[:2], d.Hex, "data"), data, 0o644)
		return nil
	}
	raw, err := idx.RawManifest()
	if err != nil {
		return fmt.Errorf("fake registry %s: index: %w", name, err)
	}
	d, err := idx.Digest()
	if err != nil {
		return fmt.Errorf("fake registry %s: index digest: %w", name, err)
	}
	if err := put("manifests", d, raw); err != nil {
		return err
	}
	t.WriteFile(path.Join(root, "manifests", tag), []byte(d.String()+"\n"), 0o644)
	im, err := idx.IndexManifest()
	if err != nil {
		return fmt.Errorf("fake registry %s: index: %w", name, err)
	}
	for _, desc := range im.Manifests {
		if desc.MediaType.IsIndex() {
			return errdefs.InvalidArgument("fake registry %s: nested index %s", name, desc.Digest)
		}
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return fmt.Errorf("fake registry %s: manifest %s: %w", name, desc.Digest, err)
		}
		if err := addFakeRegistryManifest(put, img); err != nil {
			return fmt.Errorf("fake registry %s: manifest %s: %w", name, desc.Digest, err)
		}
	}
	return nil
}

func addFakeRegistryManifest(put func(kind string, d v1.Hash, data []byte) error, img v1.Image) error {
	raw, err := img.RawManifest()
	if err != nil {
		return err
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	if err := put("manifests", d, raw); err != nil {
		return err
	}
	cfg, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	cd, err := img.ConfigName()
	if err != nil {
		return err
	}
	if err := put("blobs", cd, cfg); err != nil {
		return err
	}
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		ld, err := l.Digest()
		if err != nil {
			return err
		}
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %w", ld, err)
		}
		if err := put("blobs", ld, data); err != nil {
			return err
		}
	}
	return nil
}
