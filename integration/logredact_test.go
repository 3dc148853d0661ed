package integration

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/integration/framework"
	"github.com/noded/noded/internal/testimage"
)

// TestSecretsStayOutOfTheDebugLog switches a running noded to log_level 4 with SIGHUP (where the gRPC
// interceptor logs every request and response), then pulls from a registry that needs a password, creates a
// container with a secret environment value, runs ExecSync and asks for exec, attach and port-forward URLs. The
// calls are in the log; the password (also as base64 "auth"), the identity token, the environment
// value, what the exec printed and the URLs' tokens are not.
func TestSecretsStayOutOfTheDebugLog(t *testing.T) {
	framework.RequireRoot(t)
	const (
		user     = "alice"
		password = "CANARY-PW"
		envValue = "CANARY-ENV-VALUE"
		// What the exec prints is computed in the container, so that the request (which is logged: a command is
		// not a secret) does not hold it.
		execCmd = `echo "CANARY-$((6*7))-EXEC-OUT"; echo "$SECRET_ENV"`
		execOut = "CANARY-42-EXEC-OUT"
	)
	reg := testimage.StartAuthRegistry(t, user, password)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := testimage.Push(ctx, reg, "noded/private:1", framework.Busybox(t),
		remote.WithAuth(&authn.Basic{Username: user, Password: password})); err != nil {
		t.Fatal(err)
	}
	network := framework.NewNetwork(t, 52)
	plainHTTP := fmt.Sprintf("[registry.hosts.%q]\nplain_http = true\n", reg)
	n := framework.Start(t, framework.Options{CNIConfDir: network.ConfDir, Config: plainHTTP})

	// log_level 4 by SIGHUP, as an operator debugging a node would.
	base, err := os.ReadFile(n.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(n.ConfigPath, append([]byte("log_level = 4\n"), base...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(n.PID(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitDaemonLog(t, n, `"Configuration reloaded"`, 1)

	ref := reg + "/noded/private:1"
	// Without credentials the pull is refused: the registry really checks them.
	if _, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, nil, nil); err == nil {
		t.Fatal("anonymous pull from the auth registry succeeded")
	}
	basicAuth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	for _, auth := range []*runtimeapi.AuthConfig{
		{Username: user, Password: password, ServerAddress: reg, IdentityToken: "CANARY-ID-TOKEN"},
		// (A registry_token would be sent as a bearer token, which this registry refuses; the unit tests cover it.)
		{Auth: basicAuth, ServerAddress: reg},
	} {
		if _, err := n.Image.PullImage(ctx, &runtimeapi.ImageSpec{Image: ref}, auth, nil); err != nil {
			t.Fatalf("PullImage with %s's credentials: %v", user, err)
		}
	}

	e := &podEnv{n: n, net: network, ctx: ctx}
	podCfg := e.podConfig(t, "redact")
	podID := e.runPod(t, podCfg)
	t.Cleanup(func() {
		_ = n.Runtime.StopPodSandbox(context.Background(), podID)
		_ = n.Runtime.RemovePodSandbox(context.Background(), podID)
	})
	id := e.runContainer(t, podID, podCfg, "app", func(c *runtimeapi.ContainerConfig) {
		c.Image = &runtimeapi.ImageSpec{Image: ref}
		c.Envs = []*runtimeapi.KeyValue{{Key: "SECRET_ENV", Value: []byte(envValue)}}
	}, "sleep", "3600")
	stdout, stderr, err := n.Runtime.ExecSync(ctx, id, []string{"sh", "-c", execCmd}, 20*time.Second)
	if err != nil || string(stdout) != execOut+"\n"+envValue+"\n" {
		t.Fatalf("ExecSync = %q, %q, %v", stdout, stderr, err)
	}

	var tokens []string
	token := func(raw string) {
		t.Helper()
		u, err := url.Parse(raw)
		if err != nil || path.Base(u.Path) == "" || len(path.Base(u.Path)) < 8 {
			t.Fatalf("streaming URL %q has no token", raw)
		}
		tokens = append(tokens, path.Base(u.Path))
	}
	exec, err := n.Runtime.Exec(ctx, &runtimeapi.ExecRequest{ContainerId: id, Cmd: []string{"true"}, Stdout: true})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	token(exec.Url)
	attach, err := n.Runtime.Attach(ctx, &runtimeapi.AttachRequest{ContainerId: id, Stdout: true})
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	token(attach.Url)
	pf, err := n.Runtime.PortForward(ctx, &runtimeapi.PortForwardRequest{PodSandboxId: podID, Port: []int32{80}})
	if err != nil {
		t.Fatalf("PortForward: %v", err)
	}
	token(pf.Url)

	// Every call above was logged (so the test looks at the right log) ...
	log := waitDaemonLog(t, n, `"RPC" method="/runtime.v1.RuntimeService/PortForward"`, 1)
	for _, m := range []string{"ImageService/PullImage", "RuntimeService/CreateContainer", "RuntimeService/ExecSync",
		"RuntimeService/Exec\"", "RuntimeService/Attach"} {
		if !strings.Contains(log, `"RPC" method="/runtime.v1.`+m) {
			t.Errorf("no RPC log line of %s", m)
		}
	}
	// ... with what is not secret in it ...
	for _, s := range []string{"SECRET_ENV", user, "/exec/", "/attach/", "/portforward/"} {
		if !strings.Contains(log, s) {
			t.Errorf("the log lost %q", s)
		}
	}
	// ... and none of the secrets.
	for _, s := range append([]string{password, basicAuth, "CANARY-ID-TOKEN", envValue, execOut}, tokens...) {
		if strings.Contains(log, s) {
			for _, line := range strings.Split(log, "\n") {
				if strings.Contains(line, s) {
					t.Errorf("the log holds the secret %q: %.400s", s, line)
					break
				}
			}
		}
	}
}
