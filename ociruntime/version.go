package ociruntime

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/noded/noded/errdefs"
)

// MinRuncVersion is the oldest runc noded runs: runc before 1.1.12 leaks a host directory file descriptor into
// the container (CVE-2024-21626, through the image's working directory or `runc exec --cwd`).
var MinRuncVersion = [3]int{1, 1, 12}

// CheckRuncVersion runs `<path> --version`. An upstream runc older than MinRuncVersion is a FailedPrecondition
// error. A distribution's build of an older runc ("1.1.5+ds1") passes with a warning: distributions backport the
// fix without changing the version (Debian 12's 1.1.5+ds1-1+deb12u1 has it), which noded cannot tell. Other
// runtimes (crun, youki: not affected) and versions that cannot be read pass.
func CheckRuncVersion(ctx context.Context, path string) (warning string, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", path, err)
	}
	v, distro, ok := runcVersion(string(out))
	if !ok || !less(v, MinRuncVersion) {
		return "", nil
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	if distro {
		return fmt.Sprintf("%s is a distribution build older than runc %d.%d.%d (%s): make sure the package has the CVE-2024-21626 fix",
			path, MinRuncVersion[0], MinRuncVersion[1], MinRuncVersion[2], first), nil
	}
	return "", errdefs.FailedPrecondition("%s is runc %d.%d.%d; runc before %d.%d.%d is open to CVE-2024-21626: update runc",
		path, v[0], v[1], v[2], MinRuncVersion[0], MinRuncVersion[1], MinRuncVersion[2])
}

// runcVersion parses the first line of `runc --version` ("runc version 1.1.11", maybe with a pre-release suffix
// such as "-rc.1"); distro is set for a build suffix ("+ds1", as distributions add); ok is false for anything
// else.
func runcVersion(out string) (v [3]int, distro, ok bool) {
	line, _, _ := strings.Cut(out, "\n")
	rest, found := strings.CutPrefix(strings.TrimSpace(line), "runc version ")
	if !found {
		return v, false, false
	}
	rest = strings.TrimPrefix(rest, "v")
	if i := strings.IndexByte(rest, '+'); i >= 0 {
		// "+dev" is upstream's own development build marker, not a distribution's.
		distro = rest[i+1:] != "dev"
		rest = rest[:i]
	}
	if i := strings.IndexAny(rest, "- ~"); i >= 0 {
		rest = rest[:i]
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false, false
		}
		v[i] = n
	}
	return v, distro, true
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}
