// Package overlay is an overlayfs snapshotter.
//
// Layout under root:
//
//	metadata.db            bbolt: one record per snapshot (key, numeric id, kind, parent, labels, ...)
//	snapshots/<id>/fs      the snapshot's own files (upper dir of an active snapshot, a layer once committed)
//	snapshots/<id>/work    overlay work dir
//
// Ids are small integers from a persistent sequence (never reused), which keeps the lowerdir list of deep
// images short. A snapshot directory exists only while its record does: Prepare creates the directory
// inside the metadata transaction that adds the record, Remove deletes the record first and the directory
// after, and New removes any directory without a record (left by a crash). Commit only rewrites metadata.
package overlay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/boltgroup"
	"github.com/noded/noded/snapshotter"
	"github.com/noded/noded/snapshotter/archive"
)

var bucketSnapshots = []byte("snapshots")

// Snapshotter is an overlayfs snapshotter rooted at a directory. It is safe for concurrent use.
type Snapshotter struct {
	root  string
	snaps string // root/snapshots
	db    *bolt.DB
	// group shares the metadata's write transactions between concurrent callers; every write goes through it.
	group *boltgroup.Group
	// AllowDevices lets ApplyLayer create device nodes (see archive.Options).
	allowDevices bool
	// volatile: writable overlays are mounted with "volatile" (WithVolatile, where the kernel has it).
	volatile bool

	// children counts the records naming each snapshot as their parent, so that Remove need not decode every
	// record. It is read and changed only inside the metadata write transactions (which the group runs one at a
	// time), and a transaction's change is taken back when it rolls back.
	childMu  sync.Mutex
	children map[string]int
}

// addChildren adds n to parent's child count.
func (s *Snapshotter) addChildren(parent string, n int) {
	if parent == "" {
		return
	}
	s.childMu.Lock()
	defer s.childMu.Unlock()
	if s.children[parent] += n; s.children[parent] <= 0 {
		delete(s.children, parent)
	}
}

func (s *Snapshotter) childCount(key string) int {
	s.childMu.Lock()
	defer s.childMu.Unlock()
	return s.children[key]
}

var (
	_ snapshotter.Snapshotter   = (*Snapshotter)(nil)
	_ snapshotter.DirectApplier = (*Snapshotter)(nil)
	_ snapshotter.LayerApplier  = (*Snapshotter)(nil)
	_ snapshotter.FsUsager      = (*Snapshotter)(nil)
)

// Option configures New.
type Option func(*Snapshotter)

// WithAllowDevices lets layers create character and block device nodes.
func WithAllowDevices(allow bool) Option { return func(s *Snapshotter) { s.allowDevices = allow } }

// WithVolatile mounts writable overlays (active snapshots on a parent) with the "volatile" option where the
// kernel has it (5.10+, probed by New): nothing in them is synced, not even on fsync, and their unmount does
// not sync the whole filesystem holding the upper dir (which it otherwise does, tens of milliseconds on a busy
// disk). The kernel refuses to mount such an upper dir a second time, so a snapshot's Mounts can be mounted
// once only. Meant for containers' writable layers: each is mounted once, a host crash ends the container
// (CRI starts a new one on a new layer), and the layer is deleted with it.
func WithVolatile(v bool) Option { return func(s *Snapshotter) { s.volatile = v } }

// record is the stored form of a snapshot.
type record struct {
	ID      uint64            `json:"id"`
	Kind    snapshotter.Kind  `json:"kind"`
	Parent  string            `json:"parent,omitempty"`
	Created time.Time         `json:"created"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Usage caches the usage of a committed snapshot (immutable), filled on first request.
	Usage *snapshotter.Usage `json:"usage,omitempty"`
}

// New opens (creating if needed) the snapshotter rooted at root and removes leftovers of interrupted
// operations.
func New(root string, opts ...Option) (*Snapshotter, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("snapshotter root: %w", err)
	}
	s := &Snapshotter{root: root, snaps: filepath.Join(root, "snapshots"), children: map[string]int{}}
	for _, o := range opts {
		o(s)
	}
	if err := os.MkdirAll(s.snaps, 0o711); err != nil {
		return nil, fmt.Errorf("create snapshotter root: %w", err)
	}
	db, err := bolt.Open(filepath.Join(root, "metadata.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open snapshotter metadata: %w", err)
	}
	s.db = db
	s.group = boltgroup.New(db)
	if err := db.Update(func(tx *bolt.Tx) error {
		if err := Schema.Ensure(tx); err != nil {
			return err
		}
		_, err := tx.CreateBucketIfNotExists(bucketSnapshots)
		return err
	}); err != nil {
		db.Close()
		return nil, fmt.Errorf("init snapshotter metadata: %w", err)
	}
	if err := s.cleanup(); err != nil {
		db.Close()
		return nil, err
	}
	s.volatile = s.volatile && probeVolatile(root)
	return s, nil
}

// probeVolatile reports whether this kernel mounts an overlay with the volatile option (Linux 5.10 and later)
// here, by mounting one in a scratch dir below root. Without the privilege to mount it reports false.
func probeVolatile(root string) bool {
	dir, err := os.MkdirTemp(root, ".volatile-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			return false
		}
	}
	target := filepath.Join(dir, "m")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,volatile",
		filepath.Join(dir, "l"), filepath.Join(dir, "u"), filepath.Join(dir, "w"))
	if err := unix.Mount("overlay", target, "overlay", 0, opts); err != nil {
		return false
	}
	_ = unix.Unmount(target, unix.MNT_DETACH)
	return true
}

// cleanup removes snapshot directories that have no record and counts every snapshot's children.
func (s *Snapshotter) cleanup() error {
	ids := map[string]bool{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			r, err := decode(v)
			if err != nil {
				return fmt.Errorf("snapshot %q: %w", k, err)
			}
			ids[strconv.FormatUint(r.ID, 10)] = true
			s.addChildren(r.Parent, 1)
			return nil
		})
	}); err != nil {
		return fmt.Errorf("read snapshotter metadata: %w", err)
	}
	entries, err := os.ReadDir(s.snaps)
	if err != nil {
		return fmt.Errorf("read snapshots dir: %w", err)
	}
	for _, e := range entries {
		if ids[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.snaps, e.Name())); err != nil {
			return fmt.Errorf("remove orphaned snapshot dir: %w", err)
		}
	}
	return nil
}

// Close closes the metadata database.
func (s *Snapshotter) Close() error { return s.db.Close() }

// Root returns the snapshotter's root directory.
func (s *Snapshotter) Root() string { return s.root }

func decode(v []byte) (record, error) {
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("decode snapshot record: %w", err)
	}
	return r, nil
}

func put(b *bolt.Bucket, key string, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode snapshot record: %w", err)
	}
	return b.Put([]byte(key), v)
}

func get(b *bolt.Bucket, key string) (record, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return record{}, errdefs.NotFound("snapshot %q not found", key)
	}
	return decode(v)
}

func (s *Snapshotter) dirOf(id uint64) string {
	return filepath.Join(s.snaps, strconv.FormatUint(id, 10))
}

func (s *Snapshotter) fsDir(id uint64) string { return filepath.Join(s.dirOf(id), "fs") }

func info(key string, r record) snapshotter.Info {
	var labels map[string]string
	if len(r.Labels) > 0 {
		labels = make(map[string]string, len(r.Labels))
		for k, v := range r.Labels {
			labels[k] = v
		}
	}
	return snapshotter.Info{Key: key, Parent: r.Parent, Kind: r.Kind, Created: r.Created, Labels: labels}
}

// Stat returns the info of snapshot key.
func (s *Snapshotter) Stat(ctx context.Context, key string) (snapshotter.Info, error) {
	var r record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = get(tx.Bucket(bucketSnapshots), key)
		return err
	})
	if err != nil {
		return snapshotter.Info{}, err
	}
	return info(key, r), nil
}

// Prepare creates an active snapshot on parent.
func (s *Snapshotter) Prepare(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return s.create(ctx, snapshotter.KindActive, key, parent, opts)
}

// View creates a read-only snapshot of parent.
func (s *Snapshotter) View(ctx context.Context, key, parent string, opts ...snapshotter.Opt) ([]snapshotter.Mount, error) {
	return s.create(ctx, snapshotter.KindView, key, parent, opts)
}

func (s *Snapshotter) create(ctx context.Context, kind snapshotter.Kind, key, parent string, opts []snapshotter.Opt) ([]snapshotter.Mount, error) {
	if key == "" {
		return nil, errdefs.InvalidArgument("snapshot key is empty")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	in := snapshotter.Info{Key: key, Parent: parent, Kind: kind}
	for _, o := range opts {
		o(&in)
	}
	var mounts []snapshotter.Mount
	var dir string
	counted := false
	// undo takes back what the transaction did outside it when it rolls back (it may then run again).
	undo := func() {
		if counted {
			s.addChildren(parent, -1)
			counted = false
		}
		if dir != "" {
			_ = os.RemoveAll(dir)
			dir = ""
		}
		mounts = nil
	}
	err := s.group.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		if b.Get([]byte(key)) != nil {
			return errdefs.AlreadyExists("snapshot %q already exists", key)
		}
		if parent != "" {
			p, err := get(b, parent)
			if err != nil {
				return errdefs.NotFound("parent snapshot %q not found", parent)
			}
			if p.Kind != snapshotter.KindCommitted {
				return errdefs.FailedPrecondition("parent snapshot %q is not committed", parent)
			}
		}
		id, err := b.NextSequence()
		if err != nil {
			return fmt.Errorf("allocate snapshot id: %w", err)
		}
		r := record{ID: id, Kind: kind, Parent: parent, Created: time.Now().UTC(), Labels: in.Labels}
		dir = s.dirOf(id)
		if err := os.Mkdir(dir, 0o700); err != nil {
			dir = ""
			return fmt.Errorf("create snapshot dir: %w", err)
		}
		if err := os.Mkdir(filepath.Join(dir, "fs"), 0o755); err != nil {
			return fmt.Errorf("create snapshot dir: %w", err)
		}
		if kind == snapshotter.KindActive && parent != "" {
			if err := os.Mkdir(filepath.Join(dir, "work"), 0o700); err != nil {
				return fmt.Errorf("create snapshot dir: %w", err)
			}
		}
		if err := put(b, key, r); err != nil {
			return err
		}
		s.addChildren(parent, 1)
		counted = true
		mounts, err = s.mounts(b, r)
		return err
	}, undo)
	if err != nil {
		return nil, err
	}
	return mounts, nil
}

// Mounts returns the mounts of an active or view snapshot.
func (s *Snapshotter) Mounts(ctx context.Context, key string) ([]snapshotter.Mount, error) {
	var mounts []snapshotter.Mount
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := get(b, key)
		if err != nil {
			return err
		}
		if r.Kind == snapshotter.KindCommitted {
			return errdefs.FailedPrecondition("snapshot %q is committed; mount a view of it", key)
		}
		mounts, err = s.mounts(b, r)
		return err
	})
	return mounts, err
}

// maxOptions is the longest option string mount(2) takes: it copies one page, NUL included.
var maxOptions = os.Getpagesize() - 1

// mounts builds the mounts of r. Lower dirs are absolute while the options fit in a page; past that they
// are relative to the snapshots dir (Mount.Dir), at most ~9 bytes per layer.
func (s *Snapshotter) mounts(b *bolt.Bucket, r record) ([]snapshotter.Mount, error) {
	var lowers []uint64
	for p := r.Parent; p != ""; {
		pr, err := get(b, p)
		if err != nil {
			return nil, fmt.Errorf("parent chain: %w", err)
		}
		lowers = append(lowers, pr.ID)
		p = pr.Parent
	}
	ro := r.Kind == snapshotter.KindView
	switch {
	case len(lowers) == 0:
		opt := "rw"
		if ro {
			opt = "ro"
		}
		return []snapshotter.Mount{{Type: "bind", Source: s.fsDir(r.ID), Options: []string{"rbind", opt}}}, nil
	case ro && len(lowers) == 1:
		return []snapshotter.Mount{{Type: "bind", Source: s.fsDir(lowers[0]), Options: []string{"rbind", "ro"}}}, nil
	}
	build := func(dirOf func(uint64) string) []string {
		ls := make([]string, len(lowers))
		for i, id := range lowers {
			ls[i] = dirOf(id)
		}
		opts := []string{"lowerdir=" + strings.Join(ls, ":")}
		if !ro {
			opts = append(opts, "upperdir="+dirOf(r.ID), "workdir="+filepath.Join(filepath.Dir(dirOf(r.ID)), "work"))
			if s.volatile {
				opts = append(opts, "volatile")
			}
		}
		return opts
	}
	abs := build(s.fsDir)
	if len(strings.Join(abs, ",")) <= maxOptions {
		return []snapshotter.Mount{{Type: "overlay", Source: "overlay", Options: abs}}, nil
	}
	rel := build(func(id uint64) string { return strconv.FormatUint(id, 10) + "/fs" })
	if len(strings.Join(rel, ",")) > maxOptions {
		return nil, errdefs.FailedPrecondition("snapshot has too many layers (%d) to mount", len(lowers))
	}
	return []snapshotter.Mount{{Type: "overlay", Source: "overlay", Options: rel, Dir: s.snaps}}, nil
}

// Commit turns active snapshot key into committed snapshot name; only metadata changes.
func (s *Snapshotter) Commit(ctx context.Context, name, key string, opts ...snapshotter.Opt) error {
	return s.commit(ctx, name, key, nil, opts)
}

// CommitOnto commits active snapshot key, prepared without a parent, as name on the committed snapshot
// parent; only metadata changes.
func (s *Snapshotter) CommitOnto(ctx context.Context, name, key, parent string, opts ...snapshotter.Opt) error {
	if parent == "" {
		return errdefs.InvalidArgument("CommitOnto without a parent")
	}
	return s.commit(ctx, name, key, &parent, opts)
}

// commit commits key as name, rebased onto *parent when parent is not nil.
func (s *Snapshotter) commit(ctx context.Context, name, key string, parent *string, opts []snapshotter.Opt) error {
	if name == "" {
		return errdefs.InvalidArgument("snapshot name is empty")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	counted := ""
	undo := func() {
		if counted != "" {
			s.addChildren(counted, -1)
			counted = ""
		}
	}
	return s.group.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := get(b, key)
		if err != nil {
			return err
		}
		if r.Kind != snapshotter.KindActive {
			return errdefs.FailedPrecondition("snapshot %q is not active", key)
		}
		if b.Get([]byte(name)) != nil {
			return errdefs.AlreadyExists("snapshot %q already exists", name)
		}
		if parent != nil {
			if r.Parent != "" {
				return errdefs.FailedPrecondition("snapshot %q already has parent %q", key, r.Parent)
			}
			p, err := get(b, *parent)
			if err != nil {
				return errdefs.NotFound("parent snapshot %q not found", *parent)
			}
			if p.Kind != snapshotter.KindCommitted {
				return errdefs.FailedPrecondition("parent snapshot %q is not committed", *parent)
			}
			r.Parent = *parent
		}
		in := snapshotter.Info{Labels: r.Labels}
		for _, o := range opts {
			o(&in)
		}
		r.Kind, r.Labels, r.Created = snapshotter.KindCommitted, in.Labels, time.Now().UTC()
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		if err := put(b, name, r); err != nil {
			return err
		}
		if parent != nil {
			s.addChildren(*parent, 1)
			counted = *parent
		}
		return nil
	}, undo)
}

// Remove deletes snapshot key and its data; it fails with FailedPrecondition while key has children.
func (s *Snapshotter) Remove(ctx context.Context, key string) error {
	var id uint64
	lowered := ""
	undo := func() {
		if lowered != "" {
			s.addChildren(lowered, 1)
			lowered = ""
		}
	}
	err := s.group.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSnapshots)
		r, err := get(b, key)
		if err != nil {
			return err
		}
		if n := s.childCount(key); n > 0 {
			return errdefs.FailedPrecondition("snapshot %q has %d children", key, n)
		}
		if err := b.Delete([]byte(key)); err != nil {
			return err
		}
		id = r.ID
		s.addChildren(r.Parent, -1)
		lowered = r.Parent
		return nil
	}, undo)
	if err != nil {
		return err
	}
	// The record is gone: a directory left by a failure here is removed by the next New.
	if err := os.RemoveAll(s.dirOf(id)); err != nil {
		return fmt.Errorf("remove snapshot %q data: %w", key, err)
	}
	return nil
}

// Walk calls fn for every snapshot, outside any metadata transaction.
func (s *Snapshotter) Walk(ctx context.Context, fn func(context.Context, snapshotter.Info) error) error {
	var infos []snapshotter.Info
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSnapshots).ForEach(func(k, v []byte) error {
			r, err := decode(v)
			if err != nil {
				return err
			}
			infos = append(infos, info(string(k), r))
			return nil
		})
	}); err != nil {
		return err
	}
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(ctx, in); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the size of the regular files (hard links counted once) and the number of inodes of the
// snapshot's own directory. The usage of a committed snapshot is computed once and cached.
func (s *Snapshotter) Usage(ctx context.Context, key string) (snapshotter.Usage, error) {
	var r record
	if err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		r, err = get(tx.Bucket(bucketSnapshots), key)
		return err
	}); err != nil {
		return snapshotter.Usage{}, err
	}
	if r.Usage != nil {
		return *r.Usage, nil
	}
	u, err := diskUsage(ctx, s.fsDir(r.ID))
	if err != nil {
		return snapshotter.Usage{}, fmt.Errorf("usage of %q: %w", key, err)
	}
	if r.Kind == snapshotter.KindCommitted {
		// Best effort: a failure only means the walk is done again next time.
		_ = s.group.Update(func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketSnapshots)
			cur, err := get(b, key)
			if err != nil || cur.ID != r.ID {
				return err
			}
			cur.Usage = &u
			return put(b, key, cur)
		}, nil)
	}
	return u, nil
}

// DiskUsage walks the whole snapshots directory (it is not a statfs of the filesystem, which other data
// shares): regular file bytes with hard links counted once, and inodes.
func (s *Snapshotter) DiskUsage(ctx context.Context) (snapshotter.Usage, error) {
	return diskUsage(ctx, s.snaps)
}

func diskUsage(ctx context.Context, dir string) (snapshotter.Usage, error) {
	type inode struct{ dev, ino uint64 }
	seen := map[inode]struct{}{}
	var u snapshotter.Usage
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil // removed while walking (a running container's upper dir)
			}
			return err
		}
		if n++; n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			if errors.Is(err, unix.ENOENT) {
				return nil
			}
			return fmt.Errorf("stat %s: %w", p, err)
		}
		k := inode{uint64(st.Dev), st.Ino}
		if _, ok := seen[k]; ok {
			return nil
		}
		seen[k] = struct{}{}
		u.Inodes++
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			u.Size += st.Size
		}
		return nil
	})
	return u, err
}

// ApplyLayer unpacks the uncompressed layer tar r straight into the upper dir of active snapshot key,
// converting OCI whiteouts to overlay ones, and syncs it; see package archive for the rules it enforces.
func (s *Snapshotter) ApplyLayer(ctx context.Context, key string, r io.Reader) (int64, error) {
	var id uint64
	var parents []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := activeRecord(tx.Bucket(bucketSnapshots), key)
		if err != nil {
			return err
		}
		id = rec.ID
		parents, err = s.chainDirs(tx.Bucket(bucketSnapshots), rec.Parent)
		return err
	}); err != nil {
		return 0, err
	}
	return archive.Apply(ctx, s.fsDir(id), r, archive.Options{
		AllowDevices:  s.allowDevices,
		Parents:       parents,
		DropWhiteouts: len(parents) == 0,
	})
}

// ApplyLayerOnto unpacks the uncompressed layer tar r into the upper dir of active snapshot key (prepared
// without a parent) as the layer above committed snapshot parent, which need not exist yet: its directories
// are looked up, after waitParent, only when the tar needs them. Nothing is synced; see Sync.
func (s *Snapshotter) ApplyLayerOnto(ctx context.Context, key, parent string, waitParent func() error, r io.Reader) (int64, error) {
	var id uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		rec, err := activeRecord(tx.Bucket(bucketSnapshots), key)
		if err != nil {
			return err
		}
		if rec.Parent != "" {
			return errdefs.FailedPrecondition("snapshot %q has a parent; use ApplyLayer", key)
		}
		id = rec.ID
		return nil
	}); err != nil {
		return 0, err
	}
	opts := archive.Options{AllowDevices: s.allowDevices, NoSync: true, DropWhiteouts: parent == ""}
	if parent != "" {
		opts.LoadParents = func() ([]string, error) {
			if err := waitParent(); err != nil {
				return nil, err
			}
			var dirs []string
			err := s.db.View(func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketSnapshots)
				p, err := get(b, parent)
				if err != nil {
					return err
				}
				if p.Kind != snapshotter.KindCommitted {
					return errdefs.FailedPrecondition("parent snapshot %q is not committed", parent)
				}
				dirs, err = s.chainDirs(b, parent)
				return err
			})
			return dirs, err
		}
	}
	return archive.Apply(ctx, s.fsDir(id), r, opts)
}

// Sync flushes the filesystem holding the snapshots (one syncfs(2)).
func (s *Snapshotter) Sync(ctx context.Context) error {
	fd, err := unix.Open(s.snaps, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync snapshots: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync snapshots: %w", err)
	}
	return nil
}

func activeRecord(b *bolt.Bucket, key string) (record, error) {
	rec, err := get(b, key)
	if err != nil {
		return rec, err
	}
	if rec.Kind != snapshotter.KindActive {
		return rec, errdefs.FailedPrecondition("snapshot %q is not active", key)
	}
	return rec, nil
}

// chainDirs lists the fs dirs of committed snapshot top and its parents, nearest first.
func (s *Snapshotter) chainDirs(b *bolt.Bucket, top string) ([]string, error) {
	var dirs []string
	for p := top; p != ""; {
		pr, err := get(b, p)
		if err != nil {
			return nil, fmt.Errorf("parent chain: %w", err)
		}
		dirs = append(dirs, s.fsDir(pr.ID))
		p = pr.Parent
	}
	return dirs, nil
}
