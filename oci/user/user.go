// Package user resolves a container's user and groups against the /etc/passwd and /etc/group files of an
// untrusted container root filesystem.
//
// Files are opened with openat2(RESOLVE_IN_ROOT), so symlinks and ".." inside the rootfs can never lead to files
// of the host.
package user

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// maxFileSize bounds how much of /etc/passwd or /etc/group is read from an untrusted rootfs.
const maxFileSize = 16 << 20

// Passwd is one entry of /etc/passwd.
type Passwd struct {
	Name  string
	UID   uint32
	GID   uint32
	Home  string
	Shell string
}

// Group is one entry of /etc/group.
type Group struct {
	Name    string
	GID     uint32
	Members []string
}

// OpenInRoot opens path (interpreted inside root) read-only, resolving every symlink and ".." as if root were
// "/". The result is always a file below root. Device nodes, fifos and sockets are refused.
func OpenInRoot(root, path string) (*os.File, error) {
	dir, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("open rootfs %s: %w", root, err)
	}
	defer dir.Close()
	fd, err := unix.Openat2(int(dir.Fd()), strings.TrimPrefix(filepath.Clean("/"+path), "/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NOCTTY | unix.O_NONBLOCK,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, &os.PathError{Op: "openat2", Path: filepath.Join(root, path), Err: err}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root, path))
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return f, nil
}

// readLines returns the non-comment lines of path inside root split at ':'; a missing file yields no lines.
func readLines(root, path string) ([][]string, error) {
	f, err := OpenInRoot(root, path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(io.LimitReader(f, maxFileSize))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return out, nil
}

func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	return uint32(v), err == nil
}

// ReadPasswd parses /etc/passwd of rootfs. Malformed lines are skipped. A missing file yields no entries.
func ReadPasswd(rootfs string) ([]Passwd, error) {
	lines, err := readLines(rootfs, "/etc/passwd")
	if err != nil {
		return nil, err
	}
	var out []Passwd
	for _, l := range lines {
		if len(l) < 4 || l[0] == "" {
			continue
		}
		uid, ok1 := parseID(l[2])
		gid, ok2 := parseID(l[3])
		if !ok1 || !ok2 {
			continue
		}
		p := Passwd{Name: l[0], UID: uid, GID: gid}
		if len(l) > 5 {
			p.Home = l[5]
		}
		if len(l) > 6 {
			p.Shell = l[6]
		}
		out = append(out, p)
	}
	return out, nil
}

// ReadGroup parses /etc/group of rootfs. Malformed lines are skipped. A missing file yields no entries.
func ReadGroup(rootfs string) ([]Group, error) {
	lines, err := readLines(rootfs, "/etc/group")
	if err != nil {
		return nil, err
	}
	var out []Group
	for _, l := range lines {
		if len(l) < 3 || l[0] == "" {
			continue
		}
		gid, ok := parseID(l[2])
		if !ok {
			continue
		}
		g := Group{Name: l[0], GID: gid}
		if len(l) > 3 && l[3] != "" {
			for _, m := range strings.Split(l[3], ",") {
				if m = strings.TrimSpace(m); m != "" {
					g.Members = append(g.Members, m)
				}
			}
		}
		out = append(out, g)
	}
	return out, nil
}

// Request describes which user a container should run as. Exactly the CRI semantics: RunAsUser or RunAsUsername
// (at most one) take precedence over the image's USER; RunAsGroup needs one of them.
type Request struct {
	RunAsUser     *int64 // CRI run_as_user
	RunAsUsername string // CRI run_as_username
	RunAsGroup    *int64 // CRI run_as_group
	ImageUser     string // image config USER: "", "uid", "name", "uid:gid", "name:group", ...
	// SupplementalGroups are the CRI supplemental_groups (kubelet already includes fsGroup there).
	SupplementalGroups []int64
	// Strict is the CRI SupplementalGroupsPolicy Strict: groups from the image's /etc/group are not added.
	Strict bool
}

// Resolved is the user the container process runs as.
type Resolved struct {
	UID, GID uint32
	// AdditionalGids always starts with GID, then /etc/group memberships (unless Strict), then the requested
	// supplemental groups, without duplicates.
	AdditionalGids []uint32
	// Name is the passwd name of UID when known, Home its home directory ("" when unknown).
	Name, Home string
}

func idFromInt64(field string, v int64) (uint32, error) {
	if v < 0 || v > 0xFFFFFFFE {
		return 0, errdefs.InvalidArgument("%s %d is out of range", field, v)
	}
	return uint32(v), nil
}

// Resolve computes the container user from req, reading /etc/passwd and /etc/group of rootfs safely.
func Resolve(rootfs string, req Request) (*Resolved, error) {
	if req.RunAsUser != nil && req.RunAsUsername != "" {
		return nil, errdefs.InvalidArgument("run_as_user and run_as_username are mutually exclusive")
	}
	if req.RunAsGroup != nil && req.RunAsUser == nil && req.RunAsUsername == "" {
		return nil, errdefs.InvalidArgument("run_as_group is set without run_as_user or run_as_username")
	}
	passwd, err := ReadPasswd(rootfs)
	if err != nil {
		return nil, fmt.Errorf("read /etc/passwd of the image: %w", err)
	}
	groups, err := ReadGroup(rootfs)
	if err != nil {
		return nil, fmt.Errorf("read /etc/group of the image: %w", err)
	}
	byUID := func(uid uint32) *Passwd {
		for i := range passwd {
			if passwd[i].UID == uid {
				return &passwd[i]
			}
		}
		return nil
	}
	byName := func(name string) *Passwd {
		for i := range passwd {
			if passwd[i].Name == name {
				return &passwd[i]
			}
		}
		return nil
	}

	var (
		res      Resolved
		entry    *Passwd
		gidKnown bool
	)
	switch {
	case req.RunAsUser != nil:
		if res.UID, err = idFromInt64("run_as_user", *req.RunAsUser); err != nil {
			return nil, err
		}
		entry = byUID(res.UID)
	case req.RunAsUsername != "":
		if entry = byName(req.RunAsUsername); entry == nil {
			return nil, errdefs.InvalidArgument("run_as_username %q not found in the image's /etc/passwd", req.RunAsUsername)
		}
		res.UID = entry.UID
	default:
		userPart, groupPart, hasGroup := strings.Cut(req.ImageUser, ":")
		switch {
		case userPart == "":
			if hasGroup {
				return nil, errdefs.InvalidArgument("image user %q has no user part", req.ImageUser)
			}
			entry = byUID(0)
		default:
			if uid, ok := parseID(userPart); ok {
				res.UID = uid
				entry = byUID(uid)
			} else if entry = byName(userPart); entry != nil {
				res.UID = entry.UID
			} else {
				return nil, errdefs.InvalidArgument("image user %q not found in the image's /etc/passwd", userPart)
			}
		}
		if hasGroup {
			if gid, ok := parseID(groupPart); ok {
				res.GID = gid
			} else {
				found := false
				for _, g := range groups {
					if g.Name == groupPart {
						res.GID, found = g.GID, true
						break
					}
				}
				if !found {
					return nil, errdefs.InvalidArgument("image group %q not found in the image's /etc/group", groupPart)
				}
			}
			gidKnown = true
		}
	}
	if req.RunAsGroup != nil {
		if res.GID, err = idFromInt64("run_as_group", *req.RunAsGroup); err != nil {
			return nil, err
		}
		gidKnown = true
	}
	if entry != nil {
		res.Name, res.Home = entry.Name, entry.Home
		if !gidKnown {
			res.GID = entry.GID
		}
	}

	seen := map[uint32]bool{}
	add := func(g uint32) {
		if !seen[g] {
			seen[g] = true
			res.AdditionalGids = append(res.AdditionalGids, g)
		}
	}
	add(res.GID)
	if !req.Strict && res.Name != "" {
		for _, g := range groups {
			for _, m := range g.Members {
				if m == res.Name {
					add(g.GID)
					break
				}
			}
		}
	}
	for _, g := range req.SupplementalGroups {
		gid, err := idFromInt64("supplemental_groups", g)
		if err != nil {
			return nil, err
		}
		add(gid)
	}
	return &res, nil
}
