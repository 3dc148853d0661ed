package testimage

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func smallImage(t *testing.T, content string) *Set {
	t.Helper()
	f := NewFS()
	f.WriteFile("/file", []byte(content), 0o644)
	img, err := stack(nil, Gzip, OCI, f)
	if err != nil {
		t.Fatal(err)
	}
	s := newSet()
	s.Images["test/small:v1"] = img
	return s
}

func TestRegistryPushPullAndIndex(t *testing.T) {
	ctx := context.Background()
	host := StartRegistry(t)
	s := smallImage(t, "x")
	idx, err := MultiPlatform(nil, Gzip, OCI)
	if err != nil {
		t.Fatal(err)
	}
	s.Indexes["test/multi:v1"] = idx
	pushed, err := s.Push(ctx, host, nil)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host+"/test/small:v1", name.Insecure)
	got, err := remote.Image(ref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if d := digestOf(t, got); d != pushed["test/small:v1"] {
		t.Errorf("pulled %s, pushed %s", d, pushed["test/small:v1"])
	}
	iref, _ := name.ParseReference(host+"/test/multi:v1", name.Insecure)
	ridx, err := remote.Index(iref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := ridx.IndexManifest()
	if len(im.Manifests) != 3 || im.Manifests[2].Platform.Variant != "v7" {
		t.Errorf("pulled index %+v", im.Manifests)
	}
}

func TestAuthRegistry(t *testing.T) {
	ctx := context.Background()
	host := StartAuthRegistry(t, "alice", "s3cret")
	resp, err := http.Get("http://" + host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic realm=") {
		t.Fatalf("anonymous /v2/: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	s := smallImage(t, "auth")
	if _, err := s.Push(ctx, host, nil); err == nil {
		t.Fatal("anonymous push succeeded")
	}
	wrong := remote.WithAuth(&authn.Basic{Username: "alice", Password: "nope"})
	if _, err := s.Push(ctx, host, nil, wrong); err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	right := remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"})
	if _, err := s.Push(ctx, host, nil, right); err != nil {
		t.Fatalf("authenticated push: %v", err)
	}
	ref, _ := name.ParseReference(host+"/test/small:v1", name.Insecure)
	if _, err := remote.Image(ref, right); err != nil {
		t.Errorf("authenticated pull: %v", err)
	}
}

func TestCountingRegistry(t *testing.T) {
	ctx := context.Background()
	host, counter := StartCountingRegistry(t)
	s := smallImage(t, "count")
	if _, err := s.Push(ctx, host, nil); err != nil {
		t.Fatal(err)
	}
	img := s.Images["test/small:v1"]
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	if n := counter.Count(ld.String()); n != 0 {
		t.Fatalf("push counted %d blob GETs", n)
	}
	ref, _ := name.ParseReference(host+"/test/small:v1", name.Insecure)
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := remote.Image(ref, remote.WithContext(ctx))
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := got.ConfigFile(); err != nil {
				t.Error(err)
			}
			gl, _ := got.Layers()
			if _, err := readUncompressed(gl[0]); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := counter.Count(ld.String()); n != 3 {
		t.Errorf("layer fetched %d times, want 3", n)
	}
	cd, _ := img.ConfigName()
	if n := counter.Count(cd.String()); n != 3 {
		t.Errorf("config fetched %d times, want 3 (counts %v)", n, counter.Counts())
	}
	counter.Reset()
	if len(counter.Digests()) != 0 {
		t.Error("Reset kept counts")
	}
}
