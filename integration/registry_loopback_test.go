package integration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// TestLoopbackRegistryWithoutConfig is the node e2e suite's private-registry case (it pulls
// localhost:5000/pause:testing with a pull secret from a plain-HTTP registry in a pod, with no registry
// configuration on the node): a registry on this machine's loopback that noded has no entry for, or one with
// only credentials, is tried over HTTPS and then, as it answers in plain HTTP, over plain HTTP on the same port,
// with the pull's credentials. A host whose scheme is configured (here skip_verify, which means HTTPS) keeps it.
// Before the loopback rule noded refused every one of these pulls ("http: server gave HTTP response to HTTPS
// client"), which failed the e2e specs.
func TestLoopbackRegistryWithoutConfig(t *testing.T) {
	framework.RequireRoot(t)
	const user, password = "e2e-puller", "loopback-s3cret"
	reg := testimage.StartAuthRegistry(t, user, password) // 127.0.0.1:<port>, plain HTTP
	if _, err := testimage.Push(context.Background(), reg, "noded/private:1", framework.Busybox(t), remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatalf("push: %v", err)
	}
	port := reg[strings.LastIndex(reg, ":")+1:]
	localhost := "localhost:" + port

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pull := func(n *framework.Noded, ref string, auth *runtimeapi.AuthConfig) (string, error) {
		t.Helper()
		return n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, auth, nil)
	}
	creds := &runtimeapi.AuthConfig{Username: user, Password: password, ServerAddress: localhost}

	t.Run("no entry", func(t *testing.T) {
		n := framework.Start(t, framework.Options{})
		ref := localhost + "/noded/private:1"
		if _, err := pull(n, ref, nil); err == nil {
			t.Fatal("anonymous pull from the auth registry succeeded: the registry does not check credentials")
		}
		id, err := pull(n, ref, creds)
		if err != nil {
			t.Fatalf("PullImage %s with the pull's credentials and no registry config: %v", ref, err)
		}
		st, err := n.Image.ImageStatus(ctx, &runtimeapi.ImageSpec{Image: ref}, false)
		if err != nil || st.GetImage().GetId() != id || !slices.Contains(st.GetImage().GetRepoTags(), ref) {
			t.Fatalf("ImageStatus(%s) = %+v, %v; want image %s tagged %s", ref, st.GetImage(), err, id, ref)
		}
		// The same registry by its address.
		if _, err := pull(n, reg+"/noded/private:1", &runtimeapi.AuthConfig{Username: user, Password: password}); err != nil {
			t.Fatalf("PullImage %s/noded/private:1: %v", reg, err)
		}
	})

	t.Run("credentials only", func(t *testing.T) {
		n := framework.Start(t, framework.Options{Config: fmt.Sprintf(
			"[registry.hosts.%q.auth]\nusername = %q\npassword = %q\n", localhost, user, password)})
		if _, err := pull(n, localhost+"/noded/private:1", nil); err != nil {
			t.Fatalf("PullImage with configured credentials only: %v", err)
		}
	})

	t.Run("scheme configured", func(t *testing.T) {
		n := framework.Start(t, framework.Options{Config: fmt.Sprintf("[registry.hosts.%q]\nskip_verify = true\n", localhost)})
		_, err := pull(n, localhost+"/noded/private:1", creds)
		if err == nil {
			t.Fatal("a host configured for HTTPS (skip_verify) was pulled over plain HTTP")
		}
		if c := status.Code(err); c == codes.OK || c == codes.NotFound {
			t.Fatalf("PullImage error code %s (%v); want the TLS failure", c, err)
		}
	})
}
