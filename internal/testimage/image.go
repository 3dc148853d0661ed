package testimage

import (
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/noded/noded/errdefs"
)

// DefaultPlatform is the platform recorded in images unless told otherwise.
var DefaultPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// DefaultPath is the PATH of every image's environment.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Assemble builds an image of the given format from layers (bottom first),
// the container config cfg and a platform (DefaultPlatform if nil). Every
// timestamp is Epoch.
func Assemble(layers []v1.Layer, cfg v1.Config, f Format, plat *v1.Platform) (v1.Image, error) {
	img := empty.Image
	switch f {
	case OCI:
		img = mutate.MediaType(img, types.OCIManifestSchema1)
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	case Docker:
	default:
		return nil, errdefs.InvalidArgument("unknown image format %q", f)
	}
	adds := make([]mutate.Addendum, 0, len(layers))
	for i, l := range layers {
		adds = append(adds, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: fmt.Sprintf("noded testimage layer %d", i)},
		})
	}
	img, err := mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	return setConfig(img, cfg, plat)
}

func setConfig(img v1.Image, cfg v1.Config, plat *v1.Platform) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cf = cf.DeepCopy()
	if plat != nil {
		cf.OS, cf.Architecture, cf.Variant = plat.OS, plat.Architecture, plat.Variant
	} else if cf.OS == "" {
		cf.OS, cf.Architecture = DefaultPlatform.OS, DefaultPlatform.Architecture
	}
	cf.Created = v1.Time{Time: Epoch}
	cf.Config = cfg
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("setting config: %w", err)
	}
	return img, nil
}

// FormatOf reports the format of an image from its manifest media type.
func FormatOf(img v1.Image) (Format, error) {
	mt, err := img.MediaType()
	if err != nil {
		return "", fmt.Errorf("manifest media type: %w", err)
	}
	switch mt {
	case types.OCIManifestSchema1:
		return OCI, nil
	case types.DockerManifestSchema2:
		return Docker, nil
	}
	return "", errdefs.InvalidArgument("unsupported manifest media type %q", mt)
}

// CompressionOf reports the compression of the image's top layer (Gzip for
// an image without layers).
func CompressionOf(img v1.Image) (Compression, error) {
	layers, err := img.Layers()
	if err != nil {
		return "", fmt.Errorf("listing layers: %w", err)
	}
	if len(layers) == 0 {
		return Gzip, nil
	}
	mt, err := layers[len(layers)-1].MediaType()
	if err != nil {
		return "", fmt.Errorf("layer media type: %w", err)
	}
	return compressionOf(mt)
}

// Derive returns base plus an optional layer built from fsys (nil: no layer),
// with the container config changed by edit (nil: unchanged). The new layer
// uses the base's format and compression.
func Derive(base v1.Image, fsys *FS, edit func(*v1.Config)) (v1.Image, error) {
	img := base
	if fsys != nil {
		f, err := FormatOf(base)
		if err != nil {
			return nil, err
		}
		c, err := CompressionOf(base)
		if err != nil {
			return nil, err
		}
		l, err := LayerFromFS(fsys, c, f)
		if err != nil {
			return nil, err
		}
		img, err = mutate.Append(base, mutate.Addendum{
			Layer:   l,
			History: v1.History{Created: v1.Time{Time: Epoch}, CreatedBy: "noded testimage derived layer"},
		})
		if err != nil {
			return nil, fmt.Errorf("appending layer: %w", err)
		}
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	cfg := *cf.Config.DeepCopy()
	if edit != nil {
		edit(&cfg)
	}
	return setConfig(img, cfg, nil)
}

// WithUser returns base with USER set to user ("uid", "name", "uid:gid", ...).
func WithUser(base v1.Image, user string) (v1.Image, error) {
	return Derive(base, nil, func(c *v1.Config) { c.User = user })
}

// WithEntrypoint returns base with ENTRYPOINT set (and CMD kept).
func WithEntrypoint(base v1.Image, entrypoint ...string) (v1.Image, error) {
	return Derive(base, nil, func(c *v1.Config) { c.Entrypoint = entrypoint })
}

// WithCmd returns base with CMD set.
func WithCmd(base v1.Image, cmd ...string) (v1.Image, error) {
	return Derive(base, nil, func(c *v1.Config) { c.Cmd = cmd })
}

// WithLabel returns base with one more label; a cheap way to get a distinct
// image with the same layers.
func WithLabel(base v1.Image, key, value string) (v1.Image, error) {
	return Derive(base, nil, func(c *v1.Config) {
		labels := make(map[string]string, len(c.Labels)+1)
		for k, v := range c.Labels {
			labels[k] = v
		}
		labels[key] = value
		c.Labels = labels
	})
}

// WithFile returns base plus a layer holding one regular file (mode 0644).
// Different paths or contents give different images.
func WithFile(base v1.Image, path string, content []byte) (v1.Image, error) {
	fsys := NewFS()
	fsys.WriteFile(path, content, 0o644)
	return Derive(base, fsys, nil)
}

// Convert rebuilds img with every layer recompressed as c and the manifest,
// config and layer media types of format f, keeping the container config and
// platform.
func Convert(img v1.Image, c Compression, f Format) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("listing layers: %w", err)
	}
	out := make([]v1.Layer, 0, len(layers))
	for _, l := range layers {
		tb, err := readUncompressed(l)
		if err != nil {
			return nil, err
		}
		nl, err := NewLayer(tb, c, f)
		if err != nil {
			return nil, err
		}
		out = append(out, nl)
	}
	plat := v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	return Assemble(out, *cf.Config.DeepCopy(), f, &plat)
}

// PlatformImage is one entry of an image index.
type PlatformImage struct {
	Platform v1.Platform
	Image    v1.Image
}

// Index builds an image index (OCI index or Docker manifest list) over images.
func Index(f Format, images ...PlatformImage) (v1.ImageIndex, error) {
	var idx v1.ImageIndex = empty.Index
	switch f {
	case OCI:
		idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	case Docker:
		idx = mutate.IndexMediaType(idx, types.DockerManifestList)
	default:
		return nil, errdefs.InvalidArgument("unknown image format %q", f)
	}
	adds := make([]mutate.IndexAddendum, 0, len(images))
	for _, pi := range images {
		mt, err := pi.Image.MediaType()
		if err != nil {
			return nil, fmt.Errorf("manifest media type: %w", err)
		}
		p := pi.Platform
		adds = append(adds, mutate.IndexAddendum{
			Add:        pi.Image,
			Descriptor: v1.Descriptor{MediaType: mt, Platform: &p},
		})
	}
	return mutate.AppendManifests(idx, adds...), nil
}
