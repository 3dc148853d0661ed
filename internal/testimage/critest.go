package testimage

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/noded/noded/errdefs"
)

// nginxConf is the configuration of the nginx stand-ins; %d is the port.
const nginxConf = `worker_processes 1;
error_log /dev/stderr notice;
pid /run/nginx.pid;
events {
    worker_connections 256;
}
http {
    access_log /dev/stdout;
    default_type application/octet-stream;
    types {
        text/html html htm;
        text/plain txt;
    }
    server {
        listen %d;
        root /usr/share/nginx/html;
        index index.html;
    }
}
`

// Nginx returns busybox plus Debian's nginx and its libraries, serving
// /usr/share/nginx/html on port; CMD nginx -g 'daemon off;'.
func (b *Builder) Nginx(ctx context.Context, port int) (v1.Image, error) {
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	root, err := b.debs.Extract(ctx, "nginx")
	if err != nil {
		return nil, err
	}
	bin, err := b.debs.ReadFile(ctx, "nginx", "/usr/sbin/nginx")
	if err != nil {
		return nil, err
	}
	t := NewFS()
	t.WriteFile("/usr/sbin/nginx", bin, 0o755)
	if err := b.addLibs(ctx, t, filepath.Join(root, "usr/sbin/nginx")); err != nil {
		return nil, err
	}
	t.WriteFile("/etc/nginx/nginx.conf", []byte(fmt.Sprintf(nginxConf, port)), 0o644)
	t.WriteFile("/usr/share/nginx/html/index.html",
		[]byte("<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n"), 0o644)
	for _, d := range []string{"/var/log/nginx", "/var/lib/nginx", "/var/lock", "/run", "/usr/lib/nginx/modules"} {
		t.Mkdir(d, 0o755)
	}
	return Derive(base, t, func(c *v1.Config) {
		c.Cmd = []string{"nginx", "-g", "daemon off;"}
		c.ExposedPorts = map[string]struct{}{fmt.Sprintf("%d/tcp", port): {}}
	})
}

// Httpd returns busybox running `httpd -f -p 80` behind a script that first
// logs a line starting "httpd:".
func (b *Builder) Httpd(ctx context.Context) (v1.Image, error) {
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	t := NewFS()
	t.WriteFile("/usr/local/bin/httpd-foreground", []byte(`#!/bin/sh
echo "httpd: busybox httpd serving /var/www/html on :80"
exec httpd -f -v -p 80 -h /var/www/html
`), 0o755)
	t.WriteFile("/var/www/html/index.html", []byte("<html><body><h1>It works!</h1></body></html>\n"), 0o644)
	return Derive(base, t, func(c *v1.Config) {
		c.Cmd = []string{"httpd-foreground"}
		c.ExposedPorts = map[string]struct{}{"80/tcp": {}}
	})
}

// NoNewPrivs returns busybox with ENTRYPOINT /usr/local/bin/nnp, a static
// setuid-root program printing "Effective uid: N".
func (b *Builder) NoNewPrivs(ctx context.Context) (v1.Image, error) {
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	bin, err := b.debs.CompileStatic(ctx, "nnp")
	if err != nil {
		return nil, err
	}
	t := NewFS()
	t.WriteFile("/usr/local/bin/nnp", bin, 0o755|fs.ModeSetuid)
	return Derive(base, t, func(c *v1.Config) {
		c.Entrypoint = []string{"/usr/local/bin/nnp"}
		c.Cmd = nil
	})
}

// Pause returns a one-binary image: a static /pause reporting version,
// ENTRYPOINT /pause, USER 65535:65535. Different versions differ.
func (b *Builder) Pause(ctx context.Context, version string) (v1.Image, error) {
	bin, err := b.debs.CompileStatic(ctx, "pause", fmt.Sprintf("-DPAUSE_VERSION=%q", version))
	if err != nil {
		return nil, err
	}
	t := NewFS()
	t.WriteFile("/pause", bin, 0o755)
	l, err := LayerFromFS(t, b.opts.Compression, b.opts.Format)
	if err != nil {
		return nil, err
	}
	return Assemble([]v1.Layer{l}, v1.Config{
		Env:        []string{DefaultPath},
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
	}, b.opts.Format, nil)
}

// PredefinedGroup returns busybox plus user default-user (1000:1000) who is
// also in group group-defined-in-image (50000); USER 1000.
func (b *Builder) PredefinedGroup(ctx context.Context) (v1.Image, error) {
	base, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	users := append(append([]User(nil), BaseUsers...), User{Name: "default-user", UID: 1000, GID: 1000, Home: "/home/default-user"})
	groups := append(append([]Group(nil), BaseGroups...),
		Group{Name: "default-user", GID: 1000},
		Group{Name: "group-defined-in-image", GID: 50000, Members: []string{"default-user"}})
	passwd, group := PasswdFiles(users, groups)
	t := NewFS()
	t.WriteFile("/etc/passwd", passwd, 0o644)
	t.WriteFile("/etc/group", group, 0o644)
	t.Mkdir("/home/default-user", 0o755)
	if err := t.Chown("/home/default-user", 1000, 1000); err != nil {
		return nil, err
	}
	return Derive(base, t, func(c *v1.Config) { c.User = "1000" })
}

// Critest returns every image critest (cri-tools v1.36) pulls, keyed by
// upstream reference (host/repository:tag). Entries with the same image share
// a value.
func (b *Builder) Critest(ctx context.Context) (map[string]v1.Image, error) {
	bb, err := b.Busybox(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]v1.Image{}
	add := func(img v1.Image, err error, names ...string) error {
		if err != nil {
			return fmt.Errorf("building %s: %w", names[0], err)
		}
		for _, n := range names {
			out[n] = img
		}
		return nil
	}
	const staging = "gcr.io/k8s-staging-cri-tools/"
	steps := []func() error{
		func() error {
			return add(bb, nil, "registry.k8s.io/e2e-test-images/busybox:1.29-2",
				"docker.io/library/busybox:latest", "docker.io/library/busybox:1",
				"docker.io/library/busybox:1.36", "docker.io/library/busybox:1.29")
		},
		func() error {
			img, err := b.Nginx(ctx, 80)
			return add(img, err, "registry.k8s.io/e2e-test-images/nginx:1.14-2")
		},
		func() error {
			img, err := b.Nginx(ctx, 12003)
			return add(img, err, staging+"hostnet-nginx-amd64:latest")
		},
		func() error {
			img, err := b.Httpd(ctx)
			return add(img, err, "registry.k8s.io/e2e-test-images/httpd:2.4.39-4")
		},
		func() error {
			img, err := b.NoNewPrivs(ctx)
			return add(img, err, "registry.k8s.io/e2e-test-images/nonewprivs:1.3")
		},
		func() error {
			img, err := WithUser(bb, "1002")
			return add(img, err, staging+"test-image-user-uid:latest")
		},
		func() error {
			img, err := WithUser(bb, "www-data")
			return add(img, err, staging+"test-image-user-username:latest")
		},
		func() error {
			img, err := WithUser(bb, "1003:1004")
			return add(img, err, staging+"test-image-user-uid-group:latest")
		},
		func() error {
			img, err := WithUser(bb, "www-data:1004")
			return add(img, err, staging+"test-image-user-username-group:latest")
		},
		func() error {
			img, err := b.PredefinedGroup(ctx)
			return add(img, err, staging+"test-image-predefined-group:latest")
		},
		func() error {
			for _, n := range []string{"1", "2", "3", "latest", "digest"} {
				img, err := WithFile(bb, "/test-image-"+n, nil)
				if err := add(img, err, staging+"test-image-"+n+":latest"); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			img, err := WithFile(bb, "/test-image-tags", nil)
			return add(img, err, staging+"test-image-tags:1", staging+"test-image-tags:2", staging+"test-image-tags:3")
		},
		func() error {
			for _, tag := range []string{"test", "all"} {
				img, err := WithFile(bb, "/test-image-tag-"+tag, nil)
				if err := add(img, err, staging+"test-image-tag:"+tag); err != nil {
					return err
				}
			}
			return nil
		},
		func() error {
			p39, err := b.Pause(ctx, "3.9")
			if err := add(p39, err, "registry.k8s.io/pause:3.9", "k8s.gcr.io/pause:3.9"); err != nil {
				return err
			}
			p310, err := b.Pause(ctx, "3.10")
			return add(p310, err, "registry.k8s.io/pause:3.10")
		},
		func() error {
			for _, tag := range []string{"1.35.0-glibc", "1-uclibc", "1", "1-glibc", "1-musl", "latest"} {
				img, err := WithFile(bb, "/etc/busybox-variant", []byte(tag+"\n"))
				if err := add(img, err, "public.ecr.aws/docker/library/busybox:"+tag); err != nil {
					return err
				}
			}
			return nil
		},
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// MirrorRepo maps an upstream reference (host/repository:tag) to the
// repository:tag a registry mirror of that host serves it from: the
// reference without its host.
func MirrorRepo(ref string) (host, repoTag string, err error) {
	host, repoTag, ok := strings.Cut(ref, "/")
	if !ok || !strings.ContainsAny(host, ".:") {
		return "", "", errdefs.InvalidArgument("reference %q has no registry host", ref)
	}
	return host, repoTag, nil
}

// MirrorCollisions returns the repository:tag paths that two upstream hosts
// would both serve from one mirror registry with different images. An empty
// result means one registry can mirror all hosts.
func MirrorCollisions(images map[string]v1.Image) ([]string, error) {
	seen := map[string]v1.Hash{}
	var out []string
	refs := make([]string, 0, len(images))
	for r := range images {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		_, rt, err := MirrorRepo(r)
		if err != nil {
			return nil, err
		}
		d, err := images[r].Digest()
		if err != nil {
			return nil, fmt.Errorf("digest of %s: %w", r, err)
		}
		if prev, ok := seen[rt]; ok && prev != d {
			out = append(out, rt)
		}
		seen[rt] = d
	}
	return out, nil
}
