package reference

import (
	"testing"

	"github.com/noded/noded/errdefs"
)

func TestParseNormalises(t *testing.T) {
	const d = "sha256:817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e"
	cases := []struct{ in, want, norm string }{
		{"busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
		{"busybox:1.36", "docker.io/library/busybox:1.36", "docker.io/library/busybox:1.36"},
		{"library/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
		{"docker.io/busybox", "docker.io/library/busybox:latest", "docker.io/library/busybox:latest"},
		{"index.docker.io/foo/bar:v1", "docker.io/foo/bar:v1", "docker.io/foo/bar:v1"},
		{"registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/busybox:1.29-2", "registry.k8s.io/e2e-test-images/busybox:1.29-2"},
		{"localhost/foo", "localhost/foo:latest", "localhost/foo:latest"},
		{"127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t", "127.0.0.1:5000/a/b/c:t"},
		{"busybox@" + d, "docker.io/library/busybox@" + d, "docker.io/library/busybox@" + d},
		{"busybox:1.0@" + d, "docker.io/library/busybox:1.0@" + d, "docker.io/library/busybox@" + d},
		{"[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"},
	}
	for _, c := range cases {
		r, err := Parse(c.in)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.in, err)
		}
		if r.String() != c.want {
			t.Errorf("Parse(%q) = %q, want %q", c.in, r.String(), c.want)
		}
		n, err := Normalize(c.in)
		if err != nil || n != c.norm {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, n, err, c.norm)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, in := range []string{
		"", "busybox/UPPER", "Busybox", "busybox:", "busybox@sha256:abc", "a//b", "-x", "busybox:bad tag",
		"817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e",
		"sha256:817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e",
	} {
		if _, err := Parse(in); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Parse(%q) error = %v, want InvalidArgument", in, err)
		}
	}
}

func TestIsID(t *testing.T) {
	id := "817a12c32a39bbe394944ba49de563e085f1d3c5266eb8e9723256bc4448680e"
	if !IsID(id) || !IsID("sha256:"+id) || IsID(id[:12]) || IsID("busybox") {
		t.Fatal("IsID misclassifies")
	}
}
