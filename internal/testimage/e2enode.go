package testimage

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/errdefs"
)

// agnhostTool is one program of the agnhost image: a binary from a Debian
// package, at its packaged path, plus extra names for it.
type agnhostTool struct {
	pkg   string
	path  string
	links []string
}

// agnhostTools are what the e2e specs exec inside agnhost besides /agnhost
// (upstream: alpine plus bind-tools, curl, netcat-openbsd, iproute2, iperf,
// bash, util-linux-misc and socat).
var agnhostTools = []agnhostTool{
	{pkg: "bash", path: "/bin/bash", links: []string{"/usr/bin/bash"}},
	{pkg: "curl", path: "/usr/bin/curl"},
	{pkg: "netcat-openbsd", path: "/bin/nc.openbsd", links: []string{"/usr/bin/nc", "/bin/nc"}},
	{pkg: "iproute2", path: "/bin/ip", links: []string{"/usr/bin/ip", "/sbin/ip", "/usr/sbin/ip"}},
	{pkg: "iproute2", path: "/bin/ss", links: []string{"/usr/bin/ss", "/usr/sbin/ss"}},
	{pkg: "bind9-dnsutils", path: "/usr/bin/dig"},
	{pkg: "bind9-dnsutils", path: "/usr/bin/nslookup"},
	{pkg: "socat", path: "/usr/bin/socat"},
	{pkg: "iperf", path: "/usr/bin/iperf", links: []string{"/usr/local/bin/iperf"}},
	{pkg: "util-linux", path: "/usr/bin/ipcs"},
	{pkg: "util-linux", path: "/usr/bin/ipcmk"},
	{pkg: "util-linux", path: "/usr/bin/nsenter"},
	{pkg: "util-linux", path: "/usr/bin/unshare"},
}

// addTools writes each tool's binary from its Debian package into t, with its
// extra names and the libraries it links.
func (b *Builder) addTools(ctx context.Context, t *FS, tools []agnhostTool) error {
	for _, tool := range tools {
		root, err := b.debs.Extract(ctx, tool.pkg)
		if err != nil {
			return err
		}
		data, err := b.debs.ReadFile(ctx, tool.pkg, tool.path)
		if err != nil {
			return err
		}
		t.WriteFile(tool.path, data, 0o755)
		for _, l := range tool.links {
			rel, err := filepath.Rel(path.Dir(l), tool.path)
			if err != nil {
				return fmt.Errorf("link %s: %w", l, err)
			}
			t.Symlink(rel, l)
		}
		resolved, err := resolveIn(root, tool.path)
		if err != nil {
			return fmt.Errorf("package %s: %w", tool.pkg, err)
		}
		if err := b.addLibs(ctx, t, filepath.Join(root, resolved)); err != nil {
			return err
		}
	}
	return nil
}

// withTools derives from base an image with tools added (see addTools).
func (b *Builder) withTools(ctx context.Context, base v1.Image, tools ...agnhostTool) (v1.Image, error) {
	t := NewFS()
	if err := b.addTools(ctx, t, tools); err != nil {
		return nil, err
	}
	return Derive(base, t, nil)
}

// Agnhost returns a stand-in for registry.k8s.io/e2e-test-images/agnhost:
// busybox plus the tools the e2e specs exec in it (agnhostTools, from Debian
// packages, with their libraries), the agnhost binary at /agnhost with an
// /agnhost-2 link, /uploads, porter's localhost.crt and localhost.key (given
// as certPEM and keyPEM; nil leaves them out), user-defined-in-image
// (1000) in group-defined-in-image (50000), and under FakeRegistryDir the
// image its fake-registry-server serves (FakeRegistryImage, as upstream's
// image bakes in registry.k8s.io/pause:3.10.2 as pause:testing, which the
// private-registry specs pull). ENTRYPOINT /agnhost, CMD pause.
func (b *Builder) Agnhost(ctx context.Context, agnhost []byte, certPEM, keyPEM []byte) (v1.Image, error) {
	if len(agnhost) == 0 {
		return nil, errdefs.InvalidArgument("agnhost image: no agnhost binary")
	}
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	t := NewFS()
	if err := b.addTools(ctx, t, agnhostTools); err != nil {
		return nil, err
	}
	// Upstream's agnhost carries busybox's applets, nmeter among them: the restartable init container specs run
	// their nmeter-timed busybox scripts in it after an image update.
	nmeter, err := b.debs.CompileStatic(ctx, "nmeter")
	if err != nil {
		return nil, err
	}
	t.WriteFile("/bin/nmeter", nmeter, 0o755)
	pause, err := b.Pause(ctx, fakeRegistryPauseVersion)
	if err != nil {
		return nil, err
	}
	idx, err := Index(b.opts.Format, PlatformImage{Platform: DefaultPlatform, Image: pause})
	if err != nil {
		return nil, err
	}
	if err := AddFakeRegistryImage(t, FakeRegistryDir, FakeRegistryImage, FakeRegistryTag, idx); err != nil {
		return nil, err
	}
	t.WriteFile("/agnhost", agnhost, 0o755)
	t.Symlink("agnhost", "/agnhost-2")
	t.Mkdir("/uploads", 0o755)
	if certPEM != nil {
		t.WriteFile("/localhost.crt", certPEM, 0o644)
	}
	if keyPEM != nil {
		t.WriteFile("/localhost.key", keyPEM, 0o644)
	}
	users := append(append([]User(nil), BaseUsers...),
		User{Name: "user-defined-in-image", UID: 1000, GID: 1000, Home: "/home/user-defined-in-image"})
	groups := append(append([]Group(nil), BaseGroups...),
		Group{Name: "user-defined-in-image", GID: 1000},
		Group{Name: "group-defined-in-image", GID: 50000, Members: []string{"user-defined-in-image"}})
	passwd, group := PasswdFiles(users, groups)
	t.WriteFile("/etc/passwd", passwd, 0o644)
	t.WriteFile("/etc/group", group, 0o644)
	t.Mkdir("/home/user-defined-in-image", 0o755)
	if err := t.Chown("/home/user-defined-in-image", 1000, 1000); err != nil {
		return nil, err
	}
	return Derive(base, t, func(c *v1.Config) {
		c.Entrypoint = []string{"/agnhost"}
		c.Cmd = []string{"pause"}
		c.ExposedPorts = map[string]struct{}{"80/tcp": {}, "8080/tcp": {}, "8081/tcp": {}, "9376/tcp": {}, "5000/tcp": {}}
	})
}

// The image agnhost's fake-registry-server serves (upstream: fakeregistryserver/images.txt, "pause 3.10.2
// testing"); the specs pull localhost:5000/pause:testing.
const (
	FakeRegistryImage        = "pause"
	FakeRegistryTag          = "testing"
	fakeRegistryPauseVersion = "3.10.2"
)

// E2ENodeOptions are the inputs of E2ENodeSet that are not Debian packages.
type E2ENodeOptions struct {
	// AgnhostPath is the agnhost binary (k8s.io/kubernetes/test/images/agnhost, static).
	AgnhostPath string
	// PorterDir holds porter's localhost.crt and localhost.key (test/images/agnhost/porter); empty: none.
	PorterDir string
}

// E2ENodeSet builds the images the Kubernetes node e2e suite
// (k8s.io/kubernetes/test/e2e_node, v1.37) pulls in its NodeConformance specs,
// keyed by the repository:tag a mirror of their upstream host serves
// (test/utils/image/manifest.go minus the host).
func (b *Builder) E2ENodeSet(ctx context.Context, o E2ENodeOptions) (*Set, error) {
	agn, err := os.ReadFile(o.AgnhostPath)
	if err != nil {
		return nil, fmt.Errorf("agnhost binary: %w", err)
	}
	var cert, key []byte
	if o.PorterDir != "" {
		if cert, err = os.ReadFile(filepath.Join(o.PorterDir, "localhost.crt")); err != nil {
			return nil, fmt.Errorf("porter certificate: %w", err)
		}
		if key, err = os.ReadFile(filepath.Join(o.PorterDir, "localhost.key")); err != nil {
			return nil, fmt.Errorf("porter key: %w", err)
		}
	}
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	// The suite's busybox has nmeter (container lifecycle specs time their logs with it); Debian's has not.
	nmeter, err := b.debs.CompileStatic(ctx, "nmeter")
	if err != nil {
		return nil, err
	}
	extra := NewFS()
	extra.WriteFile("/bin/nmeter", nmeter, 0o755)
	bb, err := Derive(base, extra, nil)
	if err != nil {
		return nil, fmt.Errorf("busybox with nmeter: %w", err)
	}
	s := newSet()
	const e2e = "e2e-test-images/"
	add := func(name string, img v1.Image, err error) error {
		if err != nil {
			return fmt.Errorf("building %s: %w", name, err)
		}
		s.Images[name] = img
		return nil
	}
	agnhost, err := b.Agnhost(ctx, agn, cert, key)
	if err := add(e2e+"agnhost:2.66.1", agnhost, err); err != nil {
		return nil, err
	}
	// The previous agnhost must be a different image (image pull and static pod update specs).
	prev, err := WithLabel(agnhost, "org.noded.e2e.version", "2.55")
	if err := add(e2e+"agnhost:2.55", prev, err); err != nil {
		return nil, err
	}
	s.Images[e2e+"busybox:1.37.0-2"] = bb
	b136, err := WithLabel(bb, "org.noded.e2e.version", "1.36.1-1")
	if err := add(e2e+"busybox:1.36.1-1", b136, err); err != nil {
		return nil, err
	}
	nginx, err := b.Nginx(ctx, 80)
	if err := add(e2e+"nginx:1.27.0-2", nginx, err); err != nil {
		return nil, err
	}
	nginxNew, err := WithLabel(nginx, "org.noded.e2e.version", "1.28.0-2")
	if err := add(e2e+"nginx:1.28.0-2", nginxNew, err); err != nil {
		return nil, err
	}
	nnp, err := b.NoNewPrivs(ctx)
	if err := add(e2e+"nonewprivs:1.4", nnp, err); err != nil {
		return nil, err
	}
	nonroot, err := WithUser(bb, "1234")
	if err := add(e2e+"nonroot:1.5", nonroot, err); err != nil {
		return nil, err
	}
	// glibc-dns-testing: a shell and glibc's hostname (the FQDN specs run `hostname -f`, which busybox's applet
	// answers differently).
	glibc, err := b.withTools(ctx, bb, agnhostTool{pkg: "hostname", path: "/bin/hostname"})
	if err := add(e2e+"glibc-dns-testing:2.1.1", glibc, err); err != nil {
		return nil, err
	}
	// ipc-utils: util-linux's ipcs and ipcmk (the host IPC specs list the node's shared memory segments).
	ipc, err := b.withTools(ctx, bb, agnhostTool{pkg: "util-linux", path: "/usr/bin/ipcs"},
		agnhostTool{pkg: "util-linux", path: "/usr/bin/ipcmk"})
	if err := add(e2e+"ipc-utils:1.4", ipc, err); err != nil {
		return nil, err
	}
	pause, err := b.Pause(ctx, "3.10.2")
	if err := add("pause:3.10.2", pause, err); err != nil {
		return nil, err
	}
	for _, n := range []string{"kitten", "nautilus"} {
		img, err := WithFile(bb, "/data/"+n+".html", []byte(n+"\n"))
		if err := add(e2e+n+":1.8", img, err); err != nil {
			return nil, err
		}
	}
	return s, nil
}
