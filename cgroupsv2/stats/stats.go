// Package stats reads resource usage counters of one cgroup: CPU time, memory, process count and block I/O. It
// understands both layouts: the unified cgroup v2 hierarchy (one directory per cgroup holding every controller's
// files) and the cgroup v1 layout (one hierarchy per controller, <root>/<controller>/<path>).
//
// A read opens only the files of the requested groups (see Want), so sampling many cgroups stays cheap.
package stats

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// DefaultRoot is where the host's cgroup filesystems are mounted.
const DefaultRoot = "/sys/fs/cgroup"

// userHZ is the unit of cgroup v1's cpuacct.stat (USER_HZ is 100 on every Linux architecture Go supports).
const userHZ = 100

// unlimitedV1 is the smallest value treated as "no limit" in v1 limit files (the kernel reports
// PAGE_COUNTER_MAX × page size, 0x7FFFFFFFFFFFF000 on 4 KiB pages).
const unlimitedV1 = uint64(1) << 62

// Want selects the groups of counters a read fills in.
type Want uint

// Counter groups.
const (
	WantCPU Want = 1 << iota
	WantMemory
	WantPids
	WantIO
	// WantCPUUsage is the CPU usage only (CPU.UsageNanos, what the CRI's container stats carry): on v1 it
	// spares the read of cpuacct.stat; on v2 one file has every CPU counter. WantCPU includes it.
	WantCPUUsage
	WantAll = WantCPU | WantMemory | WantPids | WantIO
)

// Sample is one reading of a cgroup's counters. Fields of groups not requested, or whose files are absent, are 0.
type Sample struct {
	Time   time.Time
	CPU    CPU
	Memory Memory
	Pids   Pids
	IO     IO
}

// CPU is cumulative CPU time in nanoseconds.
type CPU struct {
	UsageNanos  uint64 // total, all cores
	UserNanos   uint64
	SystemNanos uint64
}

// Memory is the memory accounting of the cgroup, in bytes unless stated.
type Memory struct {
	Usage        uint64 // memory.current / memory.usage_in_bytes (includes page cache)
	WorkingSet   uint64 // Usage − inactive file pages, floored at 0 (what kubelet evicts on)
	RSS          uint64 // anonymous memory (v2 anon, v1 total_rss)
	Cache        uint64 // file-backed pages (v2 file, v1 total_cache)
	InactiveFile uint64
	PageFaults   uint64 // cumulative count
	MajorFaults  uint64 // cumulative count
	Limit        uint64 // 0 when unlimited
	HasSwap      bool   // swap accounting is available
	SwapUsage    uint64
	SwapLimit    uint64 // 0 when unlimited
}

// Pids is the process (task) accounting of the cgroup.
type Pids struct {
	Current uint64
	Limit   uint64 // 0 when unlimited
}

// IO is cumulative block I/O, summed over devices.
type IO struct {
	ReadBytes  uint64
	WriteBytes uint64
}

// Reader reads cgroups below a root in one layout. It is safe for concurrent use; it holds no mutable state
// but the open files of WithOpenFiles.
type Reader struct {
	root string
	v2   bool
	// files keeps the counter files open for rereading (nil: each read opens and closes its file).
	files *openFiles
	// v1 controller directory names (for example "cpuacct" or "cpu,cpuacct"); empty when not mounted.
	cpuacct, memory, pids, blkio string
}

// NewReader returns a Reader for cgroups below root (the mount point of the v2 hierarchy, or the directory
// holding the v1 per-controller mounts) in the given layout. For v1 it finds the controllers' directories once.
func NewReader(root string, v2 bool) *Reader {
	r := &Reader{root: root, v2: v2}
	if !v2 {
		r.cpuacct = findController(root, "cpuacct", "cpu,cpuacct", "cpuacct,cpu")
		r.memory = findController(root, "memory")
		r.pids = findController(root, "pids")
		r.blkio = findController(root, "blkio")
	}
	return r
}

// WithOpenFiles returns a Reader like r that keeps the counter files it reads open, to read them again with one
// pread each (a cgroup file's content is made anew by every read from offset 0) instead of open, read, close.
// A file left unread for idle is closed by a later read; a file whose read fails (its cgroup was removed) is
// closed and read again the plain way, so what is read is what a fresh open reads. At most max files stay open
// (0: a quarter of the soft RLIMIT_NOFILE). Close closes them.
func (r *Reader) WithOpenFiles(idle time.Duration, max int) *Reader {
	c := *r
	c.files = newOpenFiles(idle, max)
	return &c
}

// Close closes the files WithOpenFiles kept open; later reads open them again.
func (r *Reader) Close() {
	if r.files != nil {
		r.files.closeAll()
	}
}

// CloseIdle closes the kept files unread for the idle time of WithOpenFiles (reads do it too, at most once per
// half of it; a caller that may stop reading, its containers removed, calls this periodically).
func (r *Reader) CloseIdle() {
	if r.files != nil {
		r.files.maybeSweep(time.Now().UnixNano())
	}
}

// readFile reads a counter file through the open files when the reader keeps them.
func (r *Reader) readFile(path string) (string, error) {
	if r.files != nil {
		return r.files.read(path)
	}
	return readFile(path)
}

// Detect returns a Reader for the host's cgroups at DefaultRoot: v2 when it is a cgroup2 mount, v1 otherwise.
func Detect() *Reader {
	return NewReader(DefaultRoot, IsUnified(DefaultRoot))
}

// IsUnified reports whether dir is a cgroup2 mount.
func IsUnified(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// Read samples every counter of the cgroup at path (absolute within the hierarchy, for example
// "/noded/pod1/ctr") on the host's cgroups.
func Read(path string) (*Sample, error) {
	return Detect().Read(path, WantAll)
}

// V2 reports whether the reader uses the unified layout.
func (r *Reader) V2() bool { return r.v2 }

// Root is the directory the reader reads below.
func (r *Reader) Root() string { return r.root }

func findController(root string, names ...string) string {
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(root, n)); err == nil && fi.IsDir() {
			return n
		}
	}
	return ""
}

// Read samples the requested counter groups of the cgroup at path. A cgroup that does not exist gives a NotFound
// error; a missing counter file of an existing cgroup leaves its fields at 0.
func (r *Reader) Read(path string, want Want) (*Sample, error) {
	if !filepath.IsAbs(path) || strings.Contains(path, "..") {
		return nil, errdefs.InvalidArgument("cgroup path %q must be absolute and clean", path)
	}
	s := &Sample{Time: time.Now()}
	var err error
	if r.v2 {
		err = r.readV2(filepath.Join(r.root, path), want, s)
	} else {
		err = r.readV1(path, want, s)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// ---- v2 ----

func (r *Reader) readV2(dir string, want Want, s *Sample) error {
	// Every v2 cgroup has cpu.stat (whatever controllers it has): reading it tells whether the cgroup exists;
	// only without it (or when CPU is not wanted) is the directory looked up.
	cpuRead := false
	if want&(WantCPU|WantCPUUsage) != 0 {
		missing, err := r.eachKVMissing(join(dir, "cpu.stat"), func(k string, v uint64) {
			switch k {
			case "usage_usec":
				s.CPU.UsageNanos = v * 1000
			case "user_usec":
				s.CPU.UserNanos = v * 1000
			case "system_usec":
				s.CPU.SystemNanos = v * 1000
			}
		})
		if err != nil {
			return err
		}
		cpuRead = !missing
	}
	if !cpuRead {
		if _, err := os.Stat(dir); err != nil {
			return notFound(dir, err)
		}
	}
	if want&WantMemory != 0 {
		if err := r.readMemoryV2(dir, &s.Memory); err != nil {
			return err
		}
	}
	if want&WantPids != 0 {
		if err := r.readPids(dir, s); err != nil {
			return err
		}
	}
	if want&WantIO != 0 {
		if err := r.readIOV2(dir, s); err != nil {
			return err
		}
	}
	return nil
}

// readMemoryV2 fills m; a cgroup without the memory controller enabled leaves it zero.
func (r *Reader) readMemoryV2(dir string, m *Memory) error {
	var err error
	if m.Usage, err = r.readUint(join(dir, "memory.current")); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := r.eachKV(join(dir, "memory.stat"), func(k string, v uint64) {
		switch k {
		case "anon":
			m.RSS = v
		case "file":
			m.Cache = v
		case "inactive_file":
			m.InactiveFile = v
		case "pgfault":
			m.PageFaults = v
		case "pgmajfault":
			m.MajorFaults = v
		}
	}); err != nil {
		return err
	}
	if m.Limit, err = r.readLimit(join(dir, "memory.max")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	swap, err := r.readUint(join(dir, "memory.swap.current"))
	if err == nil {
		m.HasSwap, m.SwapUsage = true, swap
		if m.SwapLimit, err = r.readLimit(join(dir, "memory.swap.max")); err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	m.WorkingSet = workingSet(m.Usage, m.InactiveFile)
	return nil
}

func (r *Reader) readIOV2(dir string, s *Sample) error {
	return r.eachLine(join(dir, "io.stat"), func(line string) {
		// "8:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0"
		for _, f := range strings.Fields(line)[1:] {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			n, ok := parseUint(v)
			if !ok {
				continue
			}
			switch k {
			case "rbytes":
				s.IO.ReadBytes += n
			case "wbytes":
				s.IO.WriteBytes += n
			}
		}
	})
}

// ---- v1 ----

func (r *Reader) readV1(path string, want Want, s *Sample) error {
	found := false
	if want&(WantCPU|WantCPUUsage) != 0 && r.cpuacct != "" {
		dir := filepath.Join(r.root, r.cpuacct, path)
		usage, err := r.readUint(join(dir, "cpuacct.usage"))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		} else {
			found = true
			s.CPU.UsageNanos = usage
			if want&WantCPU != 0 { // the user and system times too
				if err := r.eachKV(join(dir, "cpuacct.stat"), func(k string, v uint64) {
					switch k {
					case "user":
						s.CPU.UserNanos = v * (1e9 / userHZ)
					case "system":
						s.CPU.SystemNanos = v * (1e9 / userHZ)
					}
				}); err != nil {
					return err
				}
			}
		}
	}
	if want&WantMemory != 0 && r.memory != "" {
		dir := filepath.Join(r.root, r.memory, path)
		m := &s.Memory
		usage, err := r.readUint(join(dir, "memory.usage_in_bytes"))
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		} else {
			found = true
			m.Usage = usage
			var swapTotal uint64
			if err := r.eachKV(join(dir, "memory.stat"), func(k string, v uint64) {
				switch k {
				case "total_rss":
					m.RSS = v
				case "total_cache":
					m.Cache = v
				case "total_inactive_file":
					m.InactiveFile = v
				case "total_pgfault":
					m.PageFaults = v
				case "total_pgmajfault":
					m.MajorFaults = v
				case "total_swap":
					swapTotal = v
				}
			}); err != nil {
				return err
			}
			if m.Limit, err = r.readLimit(join(dir, "memory.limit_in_bytes")); err != nil &&
				!errors.Is(err, fs.ErrNotExist) {
				return err
			}
			// memsw counts memory+swap; it exists only when the kernel accounts swap.
			if memsw, err := r.readLimit(join(dir, "memory.memsw.limit_in_bytes")); err == nil {
				m.HasSwap, m.SwapUsage = true, swapTotal
				if memsw != 0 && memsw >= m.Limit && m.Limit != 0 {
					m.SwapLimit = memsw - m.Limit
				}
			} else if !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			m.WorkingSet = workingSet(m.Usage, m.InactiveFile)
		}
	}
	if want&WantPids != 0 && r.pids != "" {
		dir := filepath.Join(r.root, r.pids, path)
		if _, err := os.Stat(dir); err == nil {
			found = true
			if err := r.readPids(dir, s); err != nil {
				return err
			}
		}
	}
	if want&WantIO != 0 && r.blkio != "" {
		dir := filepath.Join(r.root, r.blkio, path)
		if _, err := os.Stat(dir); err == nil {
			found = true
			if err := r.readBlkio(dir, s); err != nil {
				return err
			}
		}
	}
	if !found {
		// Nothing of the cgroup exists in any requested controller: tell the caller it is gone.
		return r.v1Missing(path, want)
	}
	return nil
}

func (r *Reader) v1Missing(path string, want Want) error {
	for _, c := range []struct {
		w    Want
		ctrl string
	}{{WantCPU | WantCPUUsage, r.cpuacct}, {WantMemory, r.memory}, {WantPids, r.pids}, {WantIO, r.blkio}} {
		if want&c.w != 0 && c.ctrl != "" {
			return errdefs.NotFound("cgroup %s not found", filepath.Join(r.root, c.ctrl, path))
		}
	}
	return errdefs.NotFound("no requested cgroup v1 controller is mounted below %s", r.root)
}

func (r *Reader) readBlkio(dir string, s *Sample) error {
	// The throttle files count all I/O whatever the scheduler; the recursive variant includes children.
	file := join(dir, "blkio.throttle.io_service_bytes_recursive")
	if _, err := os.Stat(file); err != nil {
		file = join(dir, "blkio.throttle.io_service_bytes")
	}
	return r.eachLine(file, func(line string) {
		// "8:0 Read 4096" ... "Total 8192"
		f := strings.Fields(line)
		if len(f) != 3 {
			return
		}
		n, ok := parseUint(f[2])
		if !ok {
			return
		}
		switch f[1] {
		case "Read":
			s.IO.ReadBytes += n
		case "Write":
			s.IO.WriteBytes += n
		}
	})
}

// ---- shared ----

// join is filepath.Join for a clean directory (made by filepath.Join) and a file name, without cleaning again:
// a stats list joins several names per cgroup.
func join(dir, name string) string { return dir + "/" + name }

func (r *Reader) readPids(dir string, s *Sample) error {
	cur, err := r.readUint(join(dir, "pids.current"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	s.Pids.Current = cur
	if s.Pids.Limit, err = r.readLimit(join(dir, "pids.max")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func workingSet(usage, inactiveFile uint64) uint64 {
	if inactiveFile >= usage {
		return 0
	}
	return usage - inactiveFile
}

func notFound(path string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errdefs.NotFound("cgroup %s not found", path)
	}
	return fmt.Errorf("cgroup %s: %w", path, err)
}

// readBufs holds the buffers readFile reads into; a read needs one only until it has copied the content out.
var readBufs = sync.Pool{New: func() any { b := make([]byte, 8<<10); return &b }}

// readFile reads a small pseudo-file. A missing file gives an error matching fs.ErrNotExist. A cgroup removed
// while it is read gives ENODEV on some kernels; it is reported as not existing too.
//
// It makes the fewest system calls a read can (open, read until end of file, close) into a pooled buffer:
// os.ReadFile also asks the poller to register the descriptor and stats it for its size, which for a cgroup
// file is 4096 whatever its content; a stats list reads several files of every container.
func readFile(path string) (string, error) {
	fd, err := openRead(path)
	if err != nil {
		return "", fileErr("open", path, err)
	}
	defer unix.Close(fd)
	s, err := readFd(fd, false)
	if err != nil {
		return "", fileErr("read", path, err)
	}
	return s, nil
}

// readFd reads fd to its end into a pooled buffer: from its offset, or with pread from offset 0 (a kept file,
// whose content a read at 0 generates again).
func readFd(fd int, fromStart bool) (string, error) {
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf, n := *bp, 0
	for {
		if n == len(buf) {
			buf = append(buf, make([]byte, len(buf))...) // a file larger than the buffer: grow it for this read
		}
		var m int
		var err error
		if fromStart {
			m, err = unix.Pread(fd, buf[n:], int64(n))
		} else {
			m, err = unix.Read(fd, buf[n:])
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return string(buf[:n]), nil
}

func openRead(path string) (int, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fileErr(op, path string, err error) error {
	if err == unix.ENODEV {
		return fmt.Errorf("%s %s: %w", op, path, fs.ErrNotExist)
	}
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func (r *Reader) readUint(path string) (uint64, error) {
	s, err := r.readFile(path)
	if err != nil {
		return 0, err
	}
	v, ok := parseUint(strings.TrimSpace(s))
	if !ok {
		return 0, fmt.Errorf("parse %s: unexpected content %q", path, strings.TrimSpace(s))
	}
	return v, nil
}

// readLimit reads a limit file: "max" (v2) or a value ≥ 2^62 (v1) mean unlimited and give 0.
func (r *Reader) readLimit(path string) (uint64, error) {
	s, err := r.readFile(path)
	if err != nil {
		return 0, err
	}
	s = strings.TrimSpace(s)
	if s == "max" {
		return 0, nil
	}
	v, ok := parseUint(s)
	if !ok {
		return 0, fmt.Errorf("parse %s: unexpected content %q", path, s)
	}
	if v >= unlimitedV1 {
		return 0, nil
	}
	return v, nil
}

// eachKV calls fn for every "key value" line of a flat-keyed file. A missing file calls nothing.
func (r *Reader) eachKV(path string, fn func(k string, v uint64)) error {
	_, err := r.eachKVMissing(path, fn)
	return err
}

// eachKVMissing is eachKV that also reports whether the file was missing.
func (r *Reader) eachKVMissing(path string, fn func(k string, v uint64)) (missing bool, err error) {
	s, err := r.readFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return true, nil
		}
		return false, err
	}
	eachLineOf(s, func(line string) {
		k, v, ok := strings.Cut(line, " ")
		if !ok {
			return
		}
		if n, ok := parseUint(strings.TrimSpace(v)); ok {
			fn(k, n)
		}
	})
	return false, nil
}

func (r *Reader) eachLine(path string, fn func(line string)) error {
	s, err := r.readFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	eachLineOf(s, fn)
	return nil
}

func eachLineOf(s string, fn func(line string)) {
	for s != "" {
		var line string
		line, s, _ = strings.Cut(s, "\n")
		if line != "" {
			fn(line)
		}
	}
}

// parseUint parses a decimal counter without allocating.
func parseUint(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (^uint64(0)-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
