package framework

import (
	"context"
	"os"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/internal/testimage"
)

var (
	builderOnce sync.Once
	builder     *testimage.Builder
	busyboxOnce sync.Once
	busybox     v1.Image
	busyboxErr  error
)

// ImageLayoutEnv names an OCI image layout (written by `hack/imagebuilder --layout`) that Busybox reads instead of
// building the image, on machines without Debian's package tools or network (the test guest).
const ImageLayoutEnv = "NODED_TEST_IMAGE_LAYOUT"

// Busybox returns the test busybox image (built once per test binary from Debian packages, or read from the
// layout named by ImageLayoutEnv).
func Busybox(t testing.TB) v1.Image {
	t.Helper()
	builderOnce.Do(func() { builder = testimage.NewBuilder(testimage.Options{}) })
	busyboxOnce.Do(func() {
		if dir := os.Getenv(ImageLayoutEnv); dir != "" {
			busybox, busyboxErr = testimage.ReadLayout(dir, testimage.TestBusybox)
			return
		}
		busybox, busyboxErr = builder.Busybox(context.Background())
	})
	if busyboxErr != nil {
		t.Fatalf("build busybox image: %v", busyboxErr)
	}
	return busybox
}

// Registry starts an in-process registry for the test, pushes images (repository:tag → image) to it and returns
// its host:port. Point a mirror of "docker.io" at "http://"+host to pull "docker.io/<repository>:<tag>".
func Registry(t testing.TB, images map[string]v1.Image) string {
	t.Helper()
	host := testimage.StartRegistry(t)
	for ref, img := range images {
		if _, err := testimage.Push(context.Background(), host, ref, img); err != nil {
			t.Fatalf("push %s: %v", ref, err)
		}
	}
	return host
}
