// Command guestimage writes the test images that tests in the systemd guest need as image tarballs, because
// the guest cannot build them (no gcc, no network). Run it on the host:
//
//	go run ./hack/guestimage -o bin/guest-images
//
// and give the guest NODED_GUEST_IMAGES=<that dir> (it is inside the shared checkout). Tests load
// <dir>/busybox.tar with integration/guest/guestimage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/noded/noded/internal/testimage"
)

func main() {
	out := flag.String("o", "bin/guest-images", "output directory")
	cache := flag.String("cache", testimage.DefaultCacheDir, "cache directory for .debs, extracted packages and helpers")
	flag.Parse()
	if err := run(*out, *cache); err != nil {
		fmt.Fprintf(os.Stderr, "guestimage: %v\n", err)
		os.Exit(1)
	}
}

func run(out, cache string) error {
	img, err := testimage.NewBuilder(testimage.Options{CacheDir: cache}).Busybox(context.Background())
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tag, err := name.NewTag("docker.io/library/busybox:latest")
	if err != nil {
		return err
	}
	path := filepath.Join(out, "busybox.tar")
	if err := tarball.WriteToFile(path+".tmp", tag, img); err != nil {
		return err
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}
