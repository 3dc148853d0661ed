package daemon

import (
	"context"
	"fmt"
	"path/filepath"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/config"
	"github.com/noded/noded/container"
	"github.com/noded/noded/cri"
	"github.com/noded/noded/image"
	"github.com/noded/noded/oci"
)

// registryConfig maps the TOML registry settings onto the image package's.
func registryConfig(c config.Registry) image.RegistryConfig {
	rc := image.DefaultRegistryConfig()
	for host, h := range c.Hosts {
		hc := image.HostConfig{MirrorsOnly: h.MirrorsOnly, PlainHTTP: h.PlainHTTP, SkipVerify: h.SkipVerify}
		for _, m := range h.Mirrors {
			hc.Mirrors = append(hc.Mirrors, image.Endpoint{URL: m.URL, SkipVerify: m.SkipVerify})
		}
		if h.Auth != nil {
			hc.Auth = &image.Credentials{Username: h.Auth.Username, Password: h.Auth.Password,
				IdentityToken: h.Auth.IdentityToken, RegistryToken: h.Auth.RegistryToken}
		}
		rc.Hosts[host] = hc
	}
	return rc
}

func (d *Daemon) assembleImages(ctx context.Context, s *services) error {
	opts := image.DefaultRegistryOptions()
	opts.StallTimeout = d.cfg.Registry.StallTimeout.Duration
	svc, err := image.New(ctx, image.Options{
		Root: filepath.Join(d.opts.Root, "images"), DB: d.db, Snapshotter: s.snapshots,
		Registry: registryConfig(d.cfg.Registry), RegistryOptions: opts,
		MaxConcurrentDownloads: d.cfg.Registry.MaxConcurrentDownloads,
		Observer:               image.Observer{Pulled: d.metrics.ObservePull, Downloaded: d.metrics.AddPullBytes},
	})
	if err != nil {
		return fmt.Errorf("images: %w", err)
	}
	s.imageSrv = svc
	s.images = imageResolver{svc}
	return nil
}

// imageResolver gives the container manager what it needs of an image.
type imageResolver struct{ svc *image.Service }

func (r imageResolver) Resolve(ctx context.Context, ref string) (container.Image, error) {
	img, err := r.svc.Get(ctx, ref)
	if err != nil {
		return container.Image{}, err
	}
	out := container.Image{
		ID: img.ID, Ref: img.ID, ChainID: img.ChainID(), RepoTags: img.RepoTags,
		Config: oci.ImageConfig{
			Env: img.Config.Env, Entrypoint: img.Config.Entrypoint, Cmd: img.Config.Cmd,
			WorkingDir: img.Config.WorkingDir, User: img.Config.User, StopSignal: img.Config.StopSignal,
		},
	}
	if len(img.RepoDigests) > 0 {
		out.Ref = img.RepoDigests[0]
	}
	return out, nil
}

func newImageServer(s *services) runtimeapi.ImageServiceServer {
	return cri.NewImageServer(s.imageSrv, cri.WithContainerFs(s.stats.ContainerFsUsage),
		cri.WithImageInUse(s.containers.ImageInUse))
}
