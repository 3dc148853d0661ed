// Package guestimage gives tests that run in the systemd guest their test images: from the tarballs
// hack/guestimage wrote on the host (directory $NODED_GUEST_IMAGES), else built here (which needs gcc and the
// Debian package cache, so only works on the host).
package guestimage

import (
	"os"
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/noded/noded/integration/framework"
)

// Busybox returns the busybox test image.
func Busybox(t testing.TB) v1.Image {
	t.Helper()
	dir := os.Getenv("NODED_GUEST_IMAGES")
	if dir == "" {
		return framework.Busybox(t)
	}
	img, err := tarball.ImageFromPath(filepath.Join(dir, "busybox.tar"), nil)
	if err != nil {
		t.Fatalf("load busybox from NODED_GUEST_IMAGES (write it on the host with go run ./hack/guestimage): %v", err)
	}
	return img
}
