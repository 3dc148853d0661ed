// Package image pulls container images into the node: it resolves references against registries (package
// registry), keeps manifests, configs and compressed layers in a content store (package content), unpacks
// layers into the snapshotter as committed snapshots keyed by chain ID, and records images in bbolt.
//
// An image's ID is the digest of its config, as containerd reports it. Its size is the sum of the compressed
// sizes of its layers plus the size of its config (the bytes a pull transfers, without the manifest).
package image

import (
	"time"

	"github.com/noded/noded/image/registry"
	digest "github.com/opencontainers/go-digest"
)

// Registry configuration types (see package registry).
type (
	// RegistryConfig holds per-host mirrors, TLS and credentials.
	RegistryConfig = registry.Config
	// HostConfig configures one registry host.
	HostConfig = registry.HostConfig
	// Endpoint is a mirror: scheme://host[:port][/path].
	Endpoint = registry.Endpoint
	// Credentials authenticate to a registry (the CRI AuthConfig).
	Credentials = registry.Credentials
	// RegistryOptions tune retries and the stall timeout.
	RegistryOptions = registry.Options
)

// DefaultRegistryConfig is the configuration without mirrors or credentials.
func DefaultRegistryConfig() RegistryConfig { return registry.DefaultConfig() }

// DefaultRegistryOptions are the default retry and stall-timeout settings.
func DefaultRegistryOptions() RegistryOptions { return registry.DefaultOptions() }

// Image is the record of a pulled image.
type Image struct {
	ID          string   // config digest, "sha256:..."
	RepoTags    []string // "docker.io/library/busybox:latest", sorted
	RepoDigests []string // "docker.io/library/busybox@sha256:<manifest or index digest>", sorted
	// Size is the sum of the compressed layer sizes and the config size.
	Size     int64
	Config   Config
	Layers   []Layer // bottom first
	Manifest Descriptor
	// Blobs are the digests of every blob this image keeps in the content store (indexes, manifests, config,
	// layers), for garbage collection.
	Blobs    []string
	Platform string // os/arch[/variant]
	Pinned   bool
	Created  time.Time // from the image config; zero when absent
	Pulled   time.Time // when the record was last written by a pull
}

// Config is the runtime part of the image config.
type Config struct {
	User         string            `json:",omitempty"`
	Env          []string          `json:",omitempty"`
	Entrypoint   []string          `json:",omitempty"`
	Cmd          []string          `json:",omitempty"`
	WorkingDir   string            `json:",omitempty"`
	StopSignal   string            `json:",omitempty"`
	Labels       map[string]string `json:",omitempty"`
	Volumes      []string          `json:",omitempty"` // sorted container paths
	ExposedPorts []string          `json:",omitempty"` // sorted "port/proto"
}

// Layer is one layer of an image.
type Layer struct {
	Descriptor
	DiffID  digest.Digest // digest of the uncompressed tar
	ChainID digest.Digest // OCI chain ID: the committed snapshot key
}

// Descriptor identifies a blob.
type Descriptor struct {
	MediaType string
	Digest    digest.Digest
	Size      int64
}

// ChainID is the chain ID of the top layer: the parent for a container's snapshot. "" for an image without
// layers.
func (i *Image) ChainID() string {
	if len(i.Layers) == 0 {
		return ""
	}
	return i.Layers[len(i.Layers)-1].ChainID.String()
}

// ChainIDs computes the OCI chain IDs of a list of diff IDs.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
