package testimage

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"

	"github.com/noded/noded/errdefs"
)

// Compression selects how layer blobs are stored.
type Compression string

const (
	Gzip         Compression = "gzip"
	Zstd         Compression = "zstd"
	Uncompressed Compression = "none"
)

// Format selects the manifest/config/layer media type family.
type Format string

const (
	// OCI uses application/vnd.oci.image.* media types.
	OCI Format = "oci"
	// Docker uses Docker image manifest v2 schema 2 media types.
	Docker Format = "docker"
)

// LayerMediaType returns the layer media type for a compression in a format.
// Docker schema 2 has no zstd layer type, so that combination is invalid.
func LayerMediaType(c Compression, f Format) (types.MediaType, error) {
	switch {
	case f == OCI && c == Gzip:
		return types.OCILayer, nil
	case f == OCI && c == Zstd:
		return types.OCILayerZStd, nil
	case f == OCI && c == Uncompressed:
		return types.OCIUncompressedLayer, nil
	case f == Docker && c == Gzip:
		return types.DockerLayer, nil
	case f == Docker && c == Uncompressed:
		return types.DockerUncompressedLayer, nil
	}
	return "", errdefs.InvalidArgument("no layer media type for compression %q in format %q", c, f)
}

func compressionOf(mt types.MediaType) (Compression, error) {
	switch mt {
	case types.OCILayer, types.DockerLayer:
		return Gzip, nil
	case types.OCILayerZStd:
		return Zstd, nil
	case types.OCIUncompressedLayer, types.DockerUncompressedLayer:
		return Uncompressed, nil
	}
	return "", errdefs.InvalidArgument("unsupported layer media type %q", mt)
}

// memLayer is a v1.Layer whose blob is held in memory. Blobs are produced
// once, so digests are computed once and pushing does not recompress.
type memLayer struct {
	blob   []byte
	digest v1.Hash
	diffID v1.Hash
	mt     types.MediaType
	comp   Compression
}

func sha(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// NewLayer compresses an uncompressed layer tar deterministically and returns
// it as a layer of the given format.
func NewLayer(tarball []byte, c Compression, f Format) (v1.Layer, error) {
	mt, err := LayerMediaType(c, f)
	if err != nil {
		return nil, err
	}
	var blob []byte
	switch c {
	case Uncompressed:
		blob = tarball
	case Gzip:
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.DefaultCompression)
		if err != nil {
			return nil, err
		}
		if _, err := zw.Write(tarball); err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip layer: %w", err)
		}
		blob = buf.Bytes()
	case Zstd:
		enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault))
		if err != nil {
			return nil, fmt.Errorf("zstd encoder: %w", err)
		}
		blob = enc.EncodeAll(tarball, nil)
		if err := enc.Close(); err != nil {
			return nil, fmt.Errorf("zstd layer: %w", err)
		}
	}
	return &memLayer{blob: blob, digest: sha(blob), diffID: sha(tarball), mt: mt, comp: c}, nil
}

// LayerFromFS serialises fsys and compresses it as NewLayer does.
func LayerFromFS(fsys *FS, c Compression, f Format) (v1.Layer, error) {
	tb, err := fsys.Tar()
	if err != nil {
		return nil, err
	}
	return NewLayer(tb, c, f)
}

func (l *memLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *memLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *memLayer) Size() (int64, error)                { return int64(len(l.blob)), nil }
func (l *memLayer) MediaType() (types.MediaType, error) { return l.mt, nil }
func (l *memLayer) Compressed() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(l.blob)), nil
}

func (l *memLayer) Uncompressed() (io.ReadCloser, error) {
	r := bytes.NewReader(l.blob)
	switch l.comp {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("gunzip layer %s: %w", l.digest, err)
		}
		return zr, nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd layer %s: %w", l.digest, err)
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(r), nil
}

// readUncompressed returns the layer's tar.
func readUncompressed(l v1.Layer) ([]byte, error) {
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	return b, nil
}
