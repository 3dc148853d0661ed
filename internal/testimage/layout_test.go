package testimage

import (
	"path/filepath"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"

	"github.com/noded/noded/errdefs"
)

func TestLayoutRoundTrip(t *testing.T) {
	img, err := random.Image(256, 2)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "layout")
	if err := WriteLayout(dir, map[string]v1.Image{"noded/x:latest": img}); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLayout(dir, "noded/x:latest")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, err := got.Digest(); err != nil || d != want {
		t.Fatalf("digest = %v, %v; want %v", d, err, want)
	}
	if _, err := ReadLayout(dir, "noded/y:latest"); !errdefs.IsNotFound(err) {
		t.Fatalf("missing name = %v, want NotFound", err)
	}
}
