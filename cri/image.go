package cri

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// FsInfoFunc reports the image filesystems and (when stored separately) the container filesystems for
// ImageFsInfo.
type FsInfoFunc func(ctx context.Context) (imageFs, containerFs []*runtimeapi.FilesystemUsage, err error)

// ImageServer implements the CRI ImageService on an image.Service. RemoveImage removes the image with all its
// tags whichever reference names it (as the CRI API documents and containerd does), and succeeds for an image
// that does not exist.
type ImageServer struct {
	runtimeapi.UnimplementedImageServiceServer
	svc    *image.Service
	fsInfo FsInfoFunc
	ctrFs  func(ctx context.Context) (*runtimeapi.FilesystemUsage, error)
	inUse  func(imageID string) error
}

// ImageServerOption configures an ImageServer.
type ImageServerOption func(*ImageServer)

// WithFsInfo replaces the default ImageFsInfo (the image service's own usage: content store plus image layer
// snapshots, no separate container filesystem).
func WithFsInfo(f FsInfoFunc) ImageServerOption { return func(s *ImageServer) { s.fsInfo = f } }

// WithContainerFs adds the container filesystem (the writable layers) to the default ImageFsInfo, as
// container_filesystems: kubelet's eviction and stats/summary read it.
func WithContainerFs(f func(ctx context.Context) (*runtimeapi.FilesystemUsage, error)) ImageServerOption {
	return func(s *ImageServer) { s.ctrFs = f }
}

// WithImageInUse makes RemoveImage fail with inUse's error (FailedPrecondition) while the image is in a use that
// must keep it, such as an image volume mounted by a container.
func WithImageInUse(inUse func(imageID string) error) ImageServerOption {
	return func(s *ImageServer) { s.inUse = inUse }
}

// NewImageServer returns the CRI ImageService of svc.
func NewImageServer(svc *image.Service, opts ...ImageServerOption) *ImageServer {
	s := &ImageServer{svc: svc}
	for _, o := range opts {
		o(s)
	}
	return s
}

var _ runtimeapi.ImageServiceServer = (*ImageServer)(nil)

func imageRef(spec *runtimeapi.ImageSpec) (string, error) {
	ref := strings.TrimSpace(spec.GetImage())
	if ref == "" {
		return "", errdefs.InvalidArgument("image reference is empty")
	}
	return ref, nil
}

// PullImage pulls the image and returns its ID (the config digest) as image_ref.
func (s *ImageServer) PullImage(ctx context.Context, req *runtimeapi.PullImageRequest) (*runtimeapi.PullImageResponse, error) {
	ref, err := imageRef(req.GetImage())
	if err != nil {
		return nil, err
	}
	var creds *image.Credentials
	if a := req.GetAuth(); a != nil {
		creds = &image.Credentials{
			Username: a.GetUsername(), Password: a.GetPassword(), Auth: a.GetAuth(),
			IdentityToken: a.GetIdentityToken(), RegistryToken: a.GetRegistryToken(), ServerAddress: a.GetServerAddress(),
		}
	}
	img, err := s.svc.Pull(ctx, ref, image.PullOptions{Auth: creds})
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PullImageResponse{ImageRef: img.ID}, nil
}

// ImageStatus returns the image, or a nil image when there is none. With verbose, info["info"] holds a JSON
// object with the image's config as pulled ("imageSpec"), its chain ID, manifest and layers.
func (s *ImageServer) ImageStatus(ctx context.Context, req *runtimeapi.ImageStatusRequest) (*runtimeapi.ImageStatusResponse, error) {
	ref, err := imageRef(req.GetImage())
	if err != nil {
		return nil, err
	}
	img, err := s.svc.Get(ctx, ref)
	if errdefs.IsNotFound(err) {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageStatusResponse{Image: toCRIImage(&img)}
	if req.GetVerbose() {
		info, err := s.verboseInfo(ctx, &img)
		if err != nil {
			return nil, err
		}
		resp.Info = map[string]string{"info": info}
	}
	return resp, nil
}

func (s *ImageServer) verboseInfo(ctx context.Context, img *image.Image) (string, error) {
	raw, err := s.svc.ConfigJSON(ctx, *img)
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(struct {
		ChainID   string          `json:"chainID"`
		ImageSpec json.RawMessage `json:"imageSpec"`
		Manifest  image.Descriptor
		Layers    []image.Layer
		Platform  string
		Pulled    string
	}{img.ChainID(), raw, img.Manifest, img.Layers, img.Platform, img.Pulled.UTC().Format("2006-01-02T15:04:05Z")})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// toCRIImage translates an image record. The config's USER gives uid when its user part is numeric, else
// username.
func toCRIImage(img *image.Image) *runtimeapi.Image {
	out := &runtimeapi.Image{
		Id:          img.ID,
		RepoTags:    img.RepoTags,
		RepoDigests: img.RepoDigests,
		Size:        uint64(img.Size),
		Spec:        &runtimeapi.ImageSpec{Image: img.ID},
		Pinned:      img.Pinned,
	}
	user, _, _ := strings.Cut(img.Config.User, ":")
	if user != "" {
		if uid, err := strconv.ParseInt(user, 10, 64); err == nil {
			out.Uid = &runtimeapi.Int64Value{Value: uid}
		} else {
			out.Username = user
		}
	}
	return out
}

func (s *ImageServer) list(ctx context.Context, f *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if ref := strings.TrimSpace(f.GetImage().GetImage()); ref != "" {
		img, err := s.svc.Get(ctx, ref)
		if errdefs.IsNotFound(err) || errdefs.IsInvalidArgument(err) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []*runtimeapi.Image{toCRIImage(&img)}, nil
	}
	imgs, err := s.svc.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*runtimeapi.Image, 0, len(imgs))
	for i := range imgs {
		out = append(out, toCRIImage(&imgs[i]))
	}
	return out, nil
}

// ListImages lists images; a filter image spec selects the image it names (by ID, ID prefix, tag or digest).
func (s *ImageServer) ListImages(ctx context.Context, req *runtimeapi.ListImagesRequest) (*runtimeapi.ListImagesResponse, error) {
	imgs, err := s.list(ctx, req.GetFilter())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.ListImagesResponse{Images: imgs}, nil
}

// StreamImages is ListImages in chunks.
func (s *ImageServer) StreamImages(req *runtimeapi.StreamImagesRequest, stream grpc.ServerStreamingServer[runtimeapi.StreamImagesResponse]) error {
	imgs, err := s.list(stream.Context(), req.GetFilter())
	if err != nil {
		return err
	}
	return chunks(imgs, func(items []*runtimeapi.Image) error {
		return stream.Send(&runtimeapi.StreamImagesResponse{Images: items})
	})
}

// RemoveImage removes the image the spec names, with all its tags and digests. Unknown images are not an error.
func (s *ImageServer) RemoveImage(ctx context.Context, req *runtimeapi.RemoveImageRequest) (*runtimeapi.RemoveImageResponse, error) {
	ref, err := imageRef(req.GetImage())
	if err != nil {
		return nil, err
	}
	if s.inUse != nil {
		img, err := s.svc.Get(ctx, ref)
		if err != nil && !errdefs.IsNotFound(err) {
			return nil, err
		}
		if err == nil {
			if err := s.inUse(img.ID); err != nil {
				return nil, err
			}
		}
	}
	if err := s.svc.Remove(ctx, ref); err != nil && !errdefs.IsNotFound(err) {
		return nil, err
	}
	return &runtimeapi.RemoveImageResponse{}, nil
}

// ImageFsInfo reports the usage of the image filesystem.
func (s *ImageServer) ImageFsInfo(ctx context.Context, _ *runtimeapi.ImageFsInfoRequest) (*runtimeapi.ImageFsInfoResponse, error) {
	if s.fsInfo != nil {
		img, ctr, err := s.fsInfo(ctx)
		if err != nil {
			return nil, err
		}
		return &runtimeapi.ImageFsInfoResponse{ImageFilesystems: img, ContainerFilesystems: ctr}, nil
	}
	u, err := s.svc.Usage(ctx)
	if err != nil {
		return nil, err
	}
	resp := &runtimeapi.ImageFsInfoResponse{ImageFilesystems: []*runtimeapi.FilesystemUsage{{
		Timestamp:  u.Timestamp.UnixNano(),
		FsId:       &runtimeapi.FilesystemIdentifier{Mountpoint: u.Mountpoint},
		UsedBytes:  &runtimeapi.UInt64Value{Value: u.UsedBytes},
		InodesUsed: &runtimeapi.UInt64Value{Value: u.InodesUsed},
	}}}
	if s.ctrFs != nil {
		c, err := s.ctrFs(ctx)
		if err != nil {
			return nil, err
		}
		resp.ContainerFilesystems = []*runtimeapi.FilesystemUsage{c}
	}
	return resp, nil
}
