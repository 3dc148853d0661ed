package cri

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/image"
	"github.com/noded/noded/internal/testimage"
	"github.com/noded/noded/snapshotter/overlay"
	bolt "go.etcd.io/bbolt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

type imageEnv struct {
	srv  *ImageServer
	svc  *image.Service
	host string
	root string
}

func newImageEnv(t *testing.T) *imageEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the overlay snapshotter needs root")
	}
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, "noded.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sn, err := overlay.New(filepath.Join(dir, "overlay"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sn.Close() })
	cfg := image.DefaultRegistryConfig()
	cfg.Hosts[host] = image.HostConfig{PlainHTTP: true}
	svc, err := image.New(context.Background(), image.Options{Root: filepath.Join(dir, "images"), DB: db, Snapshotter: sn, Registry: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return &imageEnv{srv: NewImageServer(svc), svc: svc, host: host, root: dir}
}

func (e *imageEnv) push(t *testing.T, repoTag, user string, files map[string]string) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	l, err := testimage.NewLayer(buf.Bytes(), testimage.Gzip, testimage.OCI)
	if err != nil {
		t.Fatal(err)
	}
	img, err := testimage.Assemble([]v1.Layer{l}, v1.Config{User: user, Env: []string{"PATH=/bin"}}, testimage.OCI, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testimage.Push(context.Background(), e.host, repoTag, img); err != nil {
		t.Fatal(err)
	}
	return img
}

func spec(ref string) *runtimeapi.ImageSpec { return &runtimeapi.ImageSpec{Image: ref} }

func TestImageServerLifecycle(t *testing.T) {
	e := newImageEnv(t)
	ctx := context.Background()
	img := e.push(t, "app:1", "1234:1234", map[string]string{"hello": "world"})
	e.push(t, "app:2", "1234:1234", map[string]string{"hello": "world"}) // same image, second tag
	named := e.push(t, "named:1", "nobody", map[string]string{"n": "n"})
	cfgName, _ := img.ConfigName()

	pr, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/app:1")})
	if err != nil {
		t.Fatal(err)
	}
	if pr.ImageRef != cfgName.String() {
		t.Fatalf("image_ref = %s, want the config digest %s", pr.ImageRef, cfgName)
	}
	if _, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/app:2")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/named:1")}); err != nil {
		t.Fatal(err)
	}

	st, err := e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(e.host + "/app:2"), Verbose: true})
	if err != nil {
		t.Fatal(err)
	}
	im := st.GetImage()
	if im.GetId() != pr.ImageRef || !slices.Equal(im.RepoTags, []string{e.host + "/app:1", e.host + "/app:2"}) ||
		len(im.RepoDigests) != 1 || im.Size == 0 || im.GetUid().GetValue() != 1234 || im.Username != "" ||
		im.GetSpec().GetImage() != pr.ImageRef {
		t.Fatalf("status = %v", im)
	}
	var info struct {
		ChainID   string `json:"chainID"`
		ImageSpec struct {
			Config struct{ Env []string } `json:"config"`
		} `json:"imageSpec"`
	}
	if err := json.Unmarshal([]byte(st.Info["info"]), &info); err != nil || info.ChainID == "" || info.ImageSpec.Config.Env[0] != "PATH=/bin" {
		t.Fatalf("verbose info %q: %v", st.Info["info"], err)
	}
	// By ID, ID prefix and digest too.
	for _, ref := range []string{pr.ImageRef, strings.TrimPrefix(pr.ImageRef, "sha256:")[:12], im.RepoDigests[0]} {
		st, err := e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(ref)})
		if err != nil || st.GetImage().GetId() != pr.ImageRef || st.Info != nil {
			t.Errorf("ImageStatus(%s) = %v, %v", ref, st, err)
		}
	}
	st, err = e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(e.host + "/named:1")})
	if err != nil || st.GetImage().GetUsername() != "nobody" || st.GetImage().GetUid() != nil {
		t.Fatalf("named user: %v %v", st, err)
	}
	namedID, _ := named.ConfigName()

	// Unknown: nil image, no error.
	st, err = e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec("busybox:nope")})
	if err != nil || st.GetImage() != nil {
		t.Fatalf("unknown image: %v, %v", st, err)
	}

	lr, err := e.srv.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(lr.Images) != 2 {
		t.Fatalf("ListImages = %v, %v", lr, err)
	}
	lr, err = e.srv.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: spec(e.host + "/named:1")}})
	if err != nil || len(lr.Images) != 1 || lr.Images[0].Id != namedID.String() {
		t.Fatalf("filtered ListImages = %v, %v", lr, err)
	}
	lr, err = e.srv.ListImages(ctx, &runtimeapi.ListImagesRequest{Filter: &runtimeapi.ImageFilter{Image: spec("nothing:here")}})
	if err != nil || len(lr.Images) != 0 {
		t.Fatalf("ListImages of unknown = %v, %v", lr, err)
	}
	stream := &imageStream{ctx: ctx}
	if err := e.srv.StreamImages(&runtimeapi.StreamImagesRequest{}, stream); err != nil {
		t.Fatal(err)
	}
	if n := countStreamed(stream.sent); n != 2 {
		t.Fatalf("StreamImages sent %d images", n)
	}

	fs, err := e.srv.ImageFsInfo(ctx, &runtimeapi.ImageFsInfoRequest{})
	if err != nil || len(fs.ImageFilesystems) != 1 {
		t.Fatalf("ImageFsInfo = %v, %v", fs, err)
	}
	u := fs.ImageFilesystems[0]
	if u.GetUsedBytes().GetValue() == 0 || u.GetInodesUsed().GetValue() == 0 || u.GetFsId().GetMountpoint() == "" || u.Timestamp == 0 {
		t.Fatalf("usage = %v", u)
	}

	// Removing by one tag removes the image with all its tags; again is fine.
	for i := 0; i < 2; i++ {
		if _, err := e.srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec(e.host + "/app:1")}); err != nil {
			t.Fatalf("RemoveImage #%d: %v", i, err)
		}
	}
	st, err = e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(e.host + "/app:2")})
	if err != nil || st.GetImage() != nil {
		t.Fatalf("app:2 after removing app:1: %v, %v", st, err)
	}
	if _, err := e.srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec(namedID.String())}); err != nil {
		t.Fatal(err)
	}
	lr, err = e.srv.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	if err != nil || len(lr.Images) != 0 {
		t.Fatalf("images left: %v, %v", lr, err)
	}
	blobs, _ := filepath.Glob(filepath.Join(e.root, "images", "content", "blobs", "sha256", "*"))
	if len(blobs) != 0 {
		t.Errorf("blobs left: %v", blobs)
	}
}

func TestImageServerValidation(t *testing.T) {
	e := newImageEnv(t)
	ctx := context.Background()
	if _, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec("")}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("PullImage(\"\") = %v", err)
	}
	if _, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("PullImage(nil spec) = %v", err)
	}
	if _, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec("Bad//Ref")}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("PullImage(bad) = %v", err)
	}
	if _, err := e.srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("ImageStatus(nil spec) = %v", err)
	}
	if _, err := e.srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec(" ")}); !errdefs.IsInvalidArgument(err) {
		t.Errorf("RemoveImage(blank) = %v", err)
	}
	_, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/missing:1")})
	if !errdefs.IsNotFound(err) {
		t.Errorf("PullImage(missing) = %v, want NotFound", err)
	}
	_, err = e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/missing:1"),
		Auth: &runtimeapi.AuthConfig{Username: "u", Password: "p"}})
	if err == nil || errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Errorf("PullImage(missing, with auth) = %v", err)
	}
}

func TestImageServerFsInfoOverride(t *testing.T) {
	e := newImageEnv(t)
	called := false
	srv := NewImageServer(e.svc, WithFsInfo(func(context.Context) ([]*runtimeapi.FilesystemUsage, []*runtimeapi.FilesystemUsage, error) {
		called = true
		return []*runtimeapi.FilesystemUsage{{Timestamp: 1}}, []*runtimeapi.FilesystemUsage{{Timestamp: 2}}, nil
	}))
	fs, err := srv.ImageFsInfo(context.Background(), &runtimeapi.ImageFsInfoRequest{})
	if err != nil || !called || len(fs.ContainerFilesystems) != 1 {
		t.Fatalf("%v %v", fs, err)
	}
}

type imageStream struct {
	grpc.ServerStream
	ctx  context.Context
	sent []*runtimeapi.StreamImagesResponse
}

func (s *imageStream) Context() context.Context { return s.ctx }
func (s *imageStream) Send(r *runtimeapi.StreamImagesResponse) error {
	s.sent = append(s.sent, r)
	return nil
}
func (s *imageStream) SetHeader(metadata.MD) error  { return nil }
func (s *imageStream) SendHeader(metadata.MD) error { return nil }
func (s *imageStream) SetTrailer(metadata.MD)       {}

func countStreamed(rs []*runtimeapi.StreamImagesResponse) int {
	n := 0
	for _, r := range rs {
		n += len(r.Images)
	}
	return n
}

func TestRemoveImageRefusedWhileInUse(t *testing.T) {
	e := newImageEnv(t)
	ctx := context.Background()
	e.push(t, "vol:1", "0:0", map[string]string{"data": "x"})
	pr, err := e.srv.PullImage(ctx, &runtimeapi.PullImageRequest{Image: spec(e.host + "/vol:1")})
	if err != nil {
		t.Fatal(err)
	}
	var asked []string
	inUse := true
	srv := NewImageServer(e.svc, WithImageInUse(func(id string) error {
		asked = append(asked, id)
		if inUse {
			return errdefs.FailedPrecondition("image %s is mounted as an image volume by container(s) c1", id)
		}
		return nil
	}))
	// By tag: the check gets the image ID, the image stays.
	if _, err := srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec(e.host + "/vol:1")}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("RemoveImage in use: %v, want FailedPrecondition", err)
	}
	if !slices.Equal(asked, []string{pr.ImageRef}) {
		t.Fatalf("in-use check asked for %v, want the image ID %s", asked, pr.ImageRef)
	}
	if st, err := srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(pr.ImageRef)}); err != nil || st.GetImage() == nil {
		t.Fatalf("image gone after a refused removal: %v %v", st, err)
	}
	inUse = false
	if _, err := srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec(pr.ImageRef)}); err != nil {
		t.Fatal(err)
	}
	if st, err := srv.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: spec(pr.ImageRef)}); err != nil || st.GetImage() != nil {
		t.Fatalf("image still there: %v %v", st, err)
	}
	// Unknown images are still not an error, and need no check.
	asked = nil
	if _, err := srv.RemoveImage(ctx, &runtimeapi.RemoveImageRequest{Image: spec("nosuch:1")}); err != nil || len(asked) != 0 {
		t.Fatalf("unknown image: %v, asked %v", err, asked)
	}
}
