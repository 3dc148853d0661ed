package image

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/noded/noded/errdefs"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Manifest and layer media types.
const (
	mtDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	mtDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	mtDockerSchema1      = "application/vnd.docker.distribution.manifest.v1+json"
	mtDockerSchema1JWS   = "application/vnd.docker.distribution.manifest.v1+prettyjws"
	mtDockerConfig       = "application/vnd.docker.container.image.v1+json"
)

// Platform selects the image of an index.
type Platform struct {
	OS           string
	Architecture string
	Variant      string
}

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// DefaultPlatform is the node's platform: linux/GOARCH, with the usual variant for arm (v7) and arm64 (v8).
func DefaultPlatform() Platform {
	p := Platform{OS: "linux", Architecture: runtime.GOARCH}
	switch runtime.GOARCH {
	case "arm64":
		p.Variant = "v8"
	case "arm":
		p.Variant = "v7"
	}
	return p
}

// score rates how well an index entry's platform suits want: < 0 unusable, higher is better.
func (want Platform) score(have *ocispec.Platform) int {
	if have == nil || have.OS != want.OS || have.Architecture != want.Architecture {
		return -1
	}
	hv := have.Variant
	if want.Architecture == "arm64" && hv == "v8" {
		hv = ""
	}
	wv := want.Variant
	if want.Architecture == "arm64" && wv == "v8" {
		wv = ""
	}
	switch {
	case hv == wv:
		return 3
	case hv == "":
		return 2
	case want.Architecture == "arm" && len(hv) == 2 && len(wv) == 2 && hv[0] == 'v' && wv[0] == 'v' && hv < wv:
		return 1 // an older arm variant runs on a newer cpu
	}
	return -1
}

// docKind classifies a manifest document.
type docKind int

const (
	docManifest docKind = iota
	docIndex
)

// classifyDoc decides from the media type (the response's, else the document's own field, else its shape)
// whether data is an image manifest or an index.
func classifyDoc(mediaType string, data []byte) (docKind, error) {
	var probe struct {
		MediaType string            `json:"mediaType"`
		Manifests []json.RawMessage `json:"manifests"`
		Layers    []json.RawMessage `json:"layers"`
		FSLayers  []json.RawMessage `json:"fsLayers"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return 0, errdefs.InvalidArgument("malformed manifest: %v", err)
	}
	mt := mediaType
	switch mt {
	case ocispec.MediaTypeImageManifest, mtDockerManifest, ocispec.MediaTypeImageIndex, mtDockerManifestList,
		mtDockerSchema1, mtDockerSchema1JWS:
	default:
		mt = probe.MediaType
	}
	switch mt {
	case ocispec.MediaTypeImageManifest, mtDockerManifest:
		return docManifest, nil
	case ocispec.MediaTypeImageIndex, mtDockerManifestList:
		return docIndex, nil
	case mtDockerSchema1, mtDockerSchema1JWS:
		return 0, errdefs.InvalidArgument("docker schema 1 manifests are not supported; push the image with a schema 2 or OCI manifest")
	}
	switch {
	case probe.Manifests != nil:
		return docIndex, nil
	case probe.Layers != nil:
		return docManifest, nil
	case probe.FSLayers != nil:
		return 0, errdefs.InvalidArgument("docker schema 1 manifests are not supported")
	}
	return 0, errdefs.InvalidArgument("unsupported manifest media type %q", mediaType)
}

// pickManifest chooses the entry of index data for platform p.
func pickManifest(data []byte, p Platform) (ocispec.Descriptor, error) {
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispec.Descriptor{}, errdefs.InvalidArgument("malformed image index: %v", err)
	}
	best, bestScore := -1, -1
	var seen []string
	for i, m := range idx.Manifests {
		if m.Platform == nil {
			continue
		}
		seen = append(seen, Platform{m.Platform.OS, m.Platform.Architecture, m.Platform.Variant}.String())
		if s := p.score(m.Platform); s > bestScore {
			best, bestScore = i, s
		}
	}
	if best < 0 {
		return ocispec.Descriptor{}, errdefs.NotFound("no image for platform %s in the index (it has %v)", p, seen)
	}
	return idx.Manifests[best], nil
}

// parseManifest decodes an image manifest and checks it can be pulled.
func parseManifest(data []byte) (ocispec.Manifest, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return m, errdefs.InvalidArgument("malformed image manifest: %v", err)
	}
	if err := m.Config.Digest.Validate(); err != nil {
		return m, errdefs.InvalidArgument("image manifest: bad config digest: %v", err)
	}
	switch m.Config.MediaType {
	case ocispec.MediaTypeImageConfig, mtDockerConfig, "":
	default:
		return m, errdefs.InvalidArgument("image manifest: config media type %q is not a container image (an artifact?)", m.Config.MediaType)
	}
	for _, l := range m.Layers {
		if err := l.Digest.Validate(); err != nil {
			return m, errdefs.InvalidArgument("image manifest: bad layer digest: %v", err)
		}
		if _, err := compressionOf(l.MediaType); err != nil {
			return m, err
		}
		if l.Size < 0 {
			return m, errdefs.InvalidArgument("image manifest: negative layer size")
		}
	}
	return m, nil
}

type compression int

const (
	compNone compression = iota
	compGzip
	compZstd
)

func compressionOf(mediaType string) (compression, error) {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip, "application/vnd.docker.image.rootfs.diff.tar.gzip",
		"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
		"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip":
		return compGzip, nil
	case ocispec.MediaTypeImageLayerZstd, "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd":
		return compZstd, nil
	case ocispec.MediaTypeImageLayer, "application/vnd.docker.image.rootfs.diff.tar",
		"application/vnd.oci.image.layer.nondistributable.v1.tar":
		return compNone, nil
	}
	return 0, errdefs.InvalidArgument("unsupported layer media type %q", mediaType)
}

// maxZstdWindow is the largest zstd window a layer may ask for: the decoder keeps that much history in memory,
// so a tiny crafted layer could otherwise make each pull hold gigabytes (containerd allows 512 MiB too).
const maxZstdWindow = 512 << 20

// decompress returns the uncompressed stream of a layer blob.
func decompress(mediaType string, r io.Reader) (io.ReadCloser, error) {
	c, err := compressionOf(mediaType)
	if err != nil {
		return nil, err
	}
	switch c {
	case compGzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		return zr, nil
	case compZstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd layer: %w", err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// parseConfig decodes an image config.
func parseConfig(data []byte) (ocispec.Image, error) {
	var c ocispec.Image
	if err := json.Unmarshal(data, &c); err != nil {
		return c, errdefs.InvalidArgument("malformed image config: %v", err)
	}
	if c.RootFS.Type != "" && c.RootFS.Type != "layers" {
		return c, errdefs.InvalidArgument("image config: unsupported rootfs type %q", c.RootFS.Type)
	}
	for _, d := range c.RootFS.DiffIDs {
		if err := d.Validate(); err != nil {
			return c, errdefs.InvalidArgument("image config: bad diff ID: %v", err)
		}
	}
	return c, nil
}
