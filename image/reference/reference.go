// Package reference parses and normalises image references the way kubelet and crictl expect them:
// "busybox" is "docker.io/library/busybox:latest", "index.docker.io/x/y" is "docker.io/x/y:latest".
package reference

import (
	"regexp"
	"strings"

	"github.com/noded/noded/errdefs"
	digest "github.com/opencontainers/go-digest"
)

// DefaultDomain is the registry of references without a domain.
const DefaultDomain = "docker.io"

// DefaultTag is the tag of references with neither tag nor digest.
const DefaultTag = "latest"

const officialRepoPrefix = "library/"

var (
	componentRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	tagRe       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	domainRe    = regexp.MustCompile(`^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$`)
	idRe        = regexp.MustCompile(`^(?:sha256:)?[a-f0-9]{64}$`)
)

// Reference is a normalised image reference: Domain/Path[:Tag][@Digest]. At least one of Tag and Digest is set.
type Reference struct {
	Domain string        // registry host[:port], e.g. "docker.io"
	Path   string        // repository path, e.g. "library/busybox"
	Tag    string        // tag, "" when only a digest was given
	Digest digest.Digest // manifest digest, "" for a tag reference
}

// Parse normalises s. It fails with an InvalidArgument error for an empty or malformed reference, and for a bare
// image ID (64 hex digits), which is not a repository name.
func Parse(s string) (Reference, error) {
	if s == "" {
		return Reference{}, errdefs.InvalidArgument("empty image reference")
	}
	if idRe.MatchString(s) {
		return Reference{}, errdefs.InvalidArgument("invalid image reference %q: an image ID is not a repository name", s)
	}
	rest := s
	var r Reference
	if i := strings.IndexByte(rest, '@'); i >= 0 {
		d, err := digest.Parse(rest[i+1:])
		if err != nil {
			return Reference{}, errdefs.InvalidArgument("invalid image reference %q: bad digest: %v", s, err)
		}
		r.Digest = d
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.Contains(rest[i+1:], "/") {
		r.Tag = rest[i+1:]
		rest = rest[:i]
		if !tagRe.MatchString(r.Tag) {
			return Reference{}, errdefs.InvalidArgument("invalid image reference %q: bad tag %q", s, r.Tag)
		}
	}
	domain, path := splitDomain(rest)
	if !domainRe.MatchString(domain) {
		return Reference{}, errdefs.InvalidArgument("invalid image reference %q: bad registry host %q", s, domain)
	}
	if path == "" {
		return Reference{}, errdefs.InvalidArgument("invalid image reference %q: no repository", s)
	}
	for _, c := range strings.Split(path, "/") {
		if !componentRe.MatchString(c) {
			return Reference{}, errdefs.InvalidArgument("invalid image reference %q: bad repository name component %q (lower case letters, digits and separators only)", s, c)
		}
	}
	if len(domain)+1+len(path) > 255 {
		return Reference{}, errdefs.InvalidArgument("invalid image reference %q: repository name too long", s)
	}
	r.Domain, r.Path = domain, path
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}

// splitDomain separates the registry host from the repository path and applies the Docker Hub defaults.
func splitDomain(name string) (domain, path string) {
	i := strings.IndexByte(name, '/')
	if i < 0 || (!strings.ContainsAny(name[:i], ".:") && name[:i] != "localhost" && strings.ToLower(name[:i]) == name[:i]) {
		domain, path = DefaultDomain, name
	} else {
		domain, path = name[:i], name[i+1:]
	}
	if domain == "index.docker.io" || domain == "registry-1.docker.io" {
		domain = DefaultDomain
	}
	if domain == DefaultDomain && !strings.ContainsRune(path, '/') {
		path = officialRepoPrefix + path
	}
	return domain, path
}

// IsID reports whether s is a full image ID: "sha256:" followed by 64 hex digits, or the 64 digits alone.
func IsID(s string) bool { return idRe.MatchString(s) }

// Name is the repository name, e.g. "docker.io/library/busybox".
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised reference.
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Tagged is the "name:tag" form, "" for a digest reference. A reference with both a tag and a digest is a
// digest reference: the digest selects the content, the tag is informational (as with docker and containerd).
func (r Reference) Tagged() string {
	if r.Tag == "" || r.Digest != "" {
		return ""
	}
	return r.Name() + ":" + r.Tag
}

// WithDigest is the "name@digest" form of the repository of r.
func (r Reference) WithDigest(d digest.Digest) string { return r.Name() + "@" + d.String() }

// Object is what the registry is asked for: the digest when set, else the tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// Normalize returns the canonical string of s: a normalised reference when s parses, else an error.
func Normalize(s string) (string, error) {
	r, err := Parse(s)
	if err != nil {
		return "", err
	}
	if r.Digest != "" {
		return r.WithDigest(r.Digest), nil
	}
	return r.Tagged(), nil
}
