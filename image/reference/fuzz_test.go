package reference

import (
	"strings"
	"testing"

	"github.com/noded/noded/errdefs"
)

// FuzzParse: every input either fails with an InvalidArgument error or gives a normalised reference that
// parses back to itself.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"busybox", "busybox:1.36", "library/busybox", "docker.io/busybox", "index.docker.io/x/y", "registry-1.docker.io/a",
		"localhost/x", "localhost:5000/x/y:z", "127.0.0.1:5000/a/b/c:tag", "[::1]:5000/x", "Example.com/x", "UPPER/x",
		"registry.k8s.io/e2e-test-images/busybox:1.29-2",
		"busybox@sha256:" + strings.Repeat("a", 64), "busybox:tag@sha256:" + strings.Repeat("b", 64),
		"sha256:" + strings.Repeat("c", 64), strings.Repeat("d", 64), "x@sha512:" + strings.Repeat("e", 128),
		"", ":", "@", "/", "a//b", "a/", "-a", "a-", "a__b", "a___b", "a..b", "a:b:c", "host:/x", "host:99999999/x",
		"x:" + strings.Repeat("t", 129), strings.Repeat("a/", 200) + "a", "a\x00b", "a b", "ünïcode/x",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := Parse(s)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("Parse(%q): error %v is not InvalidArgument", s, err)
			}
			if _, nerr := Normalize(s); nerr == nil {
				t.Fatalf("Normalize(%q) succeeded where Parse failed", s)
			}
			return
		}
		if r.Domain == "" || r.Path == "" || (r.Tag == "" && r.Digest == "") {
			t.Fatalf("Parse(%q) = %+v: incomplete", s, r)
		}
		if r.Digest != "" {
			if err := r.Digest.Validate(); err != nil {
				t.Fatalf("Parse(%q): invalid digest kept: %v", s, err)
			}
		}
		if IsID(s) {
			t.Fatalf("Parse(%q) accepted an image ID", s)
		}
		if strings.ToLower(r.Path) != r.Path || strings.ContainsAny(r.Name(), " \x00@") {
			t.Fatalf("Parse(%q) = %+v: bad repository name", s, r)
		}
		again, err := Parse(r.String())
		if err != nil || again != r {
			t.Fatalf("Parse(%q) = %+v, but its String %q parses to %+v, %v", s, r, r.String(), again, err)
		}
		n, err := Normalize(s)
		if err != nil {
			t.Fatalf("Normalize(%q): %v", s, err)
		}
		if n2, err := Normalize(n); err != nil || n2 != n {
			t.Fatalf("Normalize not idempotent: %q -> %q -> %q, %v", s, n, n2, err)
		}
	})
}
