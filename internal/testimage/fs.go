package testimage

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"time"
)

// Epoch is the modification time of every tar entry and the creation time
// recorded in image configs, so that builds do not depend on the clock.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindHardlink
)

type entry struct {
	kind     entryKind
	mode     fs.FileMode // permission bits plus ModeSetuid/ModeSetgid/ModeSticky
	uid, gid int
	data     []byte
	target   string // symlink target, or hard link target (a clean absolute path)
}

// FS is an in-memory file tree that serialises to a deterministic layer tar:
// entries sorted by path, fixed mtimes, numeric owners only (uid/gid 0 unless
// Chown says otherwise), no user or host names. Missing parent directories
// are created with mode 0755. The zero value is not usable; use NewFS.
type FS struct {
	entries map[string]*entry
}

// NewFS returns an empty tree.
func NewFS() *FS { return &FS{entries: map[string]*entry{}} }

func clean(p string) string { return path.Clean("/" + p) }

func (f *FS) put(p string, e *entry) {
	p = clean(p)
	if p == "/" {
		return
	}
	f.parents(p)
	f.entries[p] = e
}

func (f *FS) parents(p string) {
	for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
		if _, ok := f.entries[dir]; ok {
			// A parent listed explicitly implies its own parents exist too.
			return
		}
		f.entries[dir] = &entry{kind: kindDir, mode: 0o755}
	}
}

// Mkdir adds a directory (or changes the mode of an existing one).
func (f *FS) Mkdir(p string, mode fs.FileMode) {
	if e, ok := f.entries[clean(p)]; ok && e.kind == kindDir {
		e.mode = mode
		return
	}
	f.put(p, &entry{kind: kindDir, mode: mode})
}

// WriteFile adds a regular file with the given content and mode.
func (f *FS) WriteFile(p string, data []byte, mode fs.FileMode) {
	f.put(p, &entry{kind: kindFile, mode: mode, data: data})
}

// Symlink adds a symbolic link at p pointing to target (stored verbatim).
func (f *FS) Symlink(target, p string) {
	f.put(p, &entry{kind: kindSymlink, mode: 0o777, target: target})
}

// Link adds a hard link at p to the regular file at oldname, which must be
// added (before or after) as a file of this tree.
func (f *FS) Link(oldname, p string) {
	f.put(p, &entry{kind: kindHardlink, target: clean(oldname)})
}

// Chown sets the numeric owner of an existing entry.
func (f *FS) Chown(p string, uid, gid int) error {
	e, ok := f.entries[clean(p)]
	if !ok {
		return fmt.Errorf("chown %s: no such entry", p)
	}
	e.uid, e.gid = uid, gid
	return nil
}

// Whiteout adds an OCI whiteout entry hiding p of the layers below.
func (f *FS) Whiteout(p string) {
	p = clean(p)
	f.WriteFile(path.Join(path.Dir(p), ".wh."+path.Base(p)), nil, 0o644)
}

// Opaque marks dir as opaque: nothing below it in lower layers stays visible.
func (f *FS) Opaque(dir string) {
	f.Mkdir(dir, 0o755)
	f.WriteFile(path.Join(clean(dir), ".wh..wh..opq"), nil, 0o644)
}

// Has reports whether p is in the tree.
func (f *FS) Has(p string) bool {
	_, ok := f.entries[clean(p)]
	return ok
}

// Merge copies every entry of other into f, replacing entries at the same path.
func (f *FS) Merge(other *FS) {
	for p, e := range other.entries {
		c := *e
		f.put(p, &c)
	}
}

func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	return mode
}

// Tar serialises the tree. Members of a hard-link group are written as one
// regular file at the group's lexically first path, the others as links to it,
// so the archive is valid in sorted order.
func (f *FS) Tar() ([]byte, error) {
	paths := make([]string, 0, len(f.entries))
	for p := range f.entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)

	// Resolve hard-link groups: the member written first carries the data.
	first := map[string]string{} // target file -> first path of its group
	for _, p := range paths {
		e := f.entries[p]
		root := p
		if e.kind == kindHardlink {
			t, ok := f.entries[e.target]
			if !ok || t.kind != kindFile {
				return nil, fmt.Errorf("hard link %s: target %s is not a regular file of the tree", p, e.target)
			}
			root = e.target
		} else if e.kind != kindFile {
			continue
		}
		if _, ok := first[root]; !ok {
			first[root] = p // paths are visited in sorted order
		}
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := f.entries[p]
		name := strings.TrimPrefix(p, "/")
		hdr := &tar.Header{Name: name, Mode: tarMode(e.mode), Uid: e.uid, Gid: e.gid, ModTime: Epoch}
		var data []byte
		switch e.kind {
		case kindDir:
			hdr.Typeflag = tar.TypeDir
			hdr.Name += "/"
		case kindSymlink:
			hdr.Typeflag = tar.TypeSymlink
			hdr.Linkname = e.target
		case kindFile, kindHardlink:
			root, src := p, e
			if e.kind == kindHardlink {
				root, src = e.target, f.entries[e.target]
			}
			hdr.Mode, hdr.Uid, hdr.Gid = tarMode(src.mode), src.uid, src.gid
			if lead := first[root]; lead != p {
				hdr.Typeflag = tar.TypeLink
				hdr.Linkname = strings.TrimPrefix(lead, "/")
			} else {
				hdr.Typeflag = tar.TypeReg
				data = src.data
				hdr.Size = int64(len(data))
			}
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, fmt.Errorf("tar header %s: %w", p, err)
		}
		if len(data) > 0 {
			if _, err := tw.Write(data); err != nil {
				return nil, fmt.Errorf("tar data %s: %w", p, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("closing tar: %w", err)
	}
	return buf.Bytes(), nil
}
