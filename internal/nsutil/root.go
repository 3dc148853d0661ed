//go:build linux

package nsutil

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// PrepareRoot makes root, the dedicated directory under which all pins live (e.g. /run/noded/ns), a mount point
// of its own with MS_UNBINDABLE propagation. Call it once at startup before Pin; it is idempotent.
//
// Why: an unbindable mount is also private, so (1) new pins do not propagate into other mount namespaces that
// are peers or slaves of the host's /run (each propagated copy would be one more mount to tear down, and a copy in
// a namespace that stops receiving events would keep the pod's namespace alive), and (2) a recursive bind of a
// parent directory (e.g. a container with a hostPath mount of /run or / using rbind) skips the whole pin subtree,
// so such a container cannot hold every other pod's network namespace alive for its lifetime. New mount namespaces
// created by clone/unshare still copy the tree (unbindable included); runtimes such as runc drop those copies when
// they pivot_root and detach the old root, so containers do not keep extra references.
//
// root must be a directory noded owns: if it already is a mount point its propagation is changed in place.
func PrepareRoot(root string) error {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create namespace pin root: %w", err)
	}
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return fmt.Errorf("resolve namespace pin root: %w", err)
	}
	mounted, err := isMountPoint(real)
	if err != nil {
		return err
	}
	if !mounted {
		if err := unix.Mount(real, real, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind mount %s onto itself: %w", real, err)
		}
	}
	if err := unix.Mount("", real, "", unix.MS_UNBINDABLE, ""); err != nil {
		return fmt.Errorf("make %s unbindable: %w", real, err)
	}
	return nil
}

// ReleaseRoot undoes PrepareRoot's self bind mount (lazily). Pins below root must be unpinned first.
func ReleaseRoot(root string) error {
	real, err := filepath.EvalSymlinks(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve namespace pin root: %w", err)
	}
	if err := unix.Unmount(real, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount %s: %w", real, err)
	}
	return nil
}

// isMountPoint reports whether path (already free of symlinks) is a mount point in this mount namespace.
func isMountPoint(path string) (bool, error) {
	mps, err := mountPoints()
	if err != nil {
		return false, err
	}
	for _, mp := range mps {
		if mp.path == path {
			return true, nil
		}
	}
	return false, nil
}

type mountInfo struct {
	path        string
	propagation string // optional fields, e.g. "shared:1 master:2" or "unbindable"
}

// mountPoints lists the mount points of /proc/self/mountinfo in order.
func mountPoints() ([]mountInfo, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	defer f.Close()
	var out []mountInfo
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		var opt []string
		for _, f := range fields[6:] {
			if f == "-" {
				break
			}
			opt = append(opt, f)
		}
		out = append(out, mountInfo{path: unescapeMountinfo(fields[4]), propagation: strings.Join(opt, " ")})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return out, nil
}

// unescapeMountinfo decodes the \ooo octal escapes the kernel uses for space, tab, newline and backslash.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
