package stats

import (
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// openFiles keeps cgroup counter files open so that a stats list rereads each with one pread instead of an open
// (a path walk through the cgroup filesystem, the costliest part), a read and a close. A cgroup file's content is
// generated afresh by a read at offset 0, so a pread of a kept file reads what a fresh open would. A removed
// cgroup's files fail their reads (ENODEV): the file is then closed and read the plain way, which reports it
// missing. Files unread for idle are closed by a later read, so those of removed containers do not stay open.
type openFiles struct {
	idle time.Duration
	max  int

	// mu is held for reading while a kept descriptor is read and for writing while descriptors are added or
	// closed, so that no read uses a number that was closed (and perhaps reused) meanwhile.
	mu    sync.RWMutex
	files map[string]*openFile
	swept atomic.Int64 // unix nanoseconds of the last sweep of idle files
}

type openFile struct {
	fd      int
	lastUse atomic.Int64 // unix nanoseconds
}

func newOpenFiles(idle time.Duration, max int) *openFiles {
	if max <= 0 {
		max = 1024
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Cur/4 > 64 {
			max = int(min(lim.Cur/4, 1<<20))
		}
	}
	if idle <= 0 {
		idle = time.Minute
	}
	o := &openFiles{idle: idle, max: max, files: map[string]*openFile{}}
	o.swept.Store(time.Now().UnixNano())
	return o
}

// read returns the content of the file at path, from its kept descriptor when there is one.
func (o *openFiles) read(path string) (string, error) {
	now := time.Now().UnixNano()
	defer o.maybeSweep(now)
	o.mu.RLock()
	f := o.files[path]
	if f != nil {
		f.lastUse.Store(now)
		s, err := readFd(f.fd, true)
		o.mu.RUnlock()
		if err == nil {
			return s, nil
		}
		o.drop(path, f) // the cgroup is gone (or the file broke): read it as a fresh open would
	} else {
		o.mu.RUnlock()
	}
	fd, err := openRead(path)
	if err != nil {
		return "", fileErr("open", path, err)
	}
	s, err := readFd(fd, false)
	if err != nil {
		unix.Close(fd)
		return "", fileErr("read", path, err)
	}
	if !o.keep(path, fd, now) {
		unix.Close(fd)
	}
	return s, nil
}

// keep stores fd as path's descriptor unless one is kept already or the limit is reached.
func (o *openFiles) keep(path string, fd int, now int64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if _, ok := o.files[path]; ok || len(o.files) >= o.max {
		return false
	}
	f := &openFile{fd: fd}
	f.lastUse.Store(now)
	o.files[path] = f
	return true
}

// drop closes f if it is still path's descriptor.
func (o *openFiles) drop(path string, f *openFile) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.files[path] == f {
		delete(o.files, path)
		unix.Close(f.fd)
	}
}

// maybeSweep closes the files unread for idle, at most once per half of idle.
func (o *openFiles) maybeSweep(now int64) {
	last := o.swept.Load()
	if now-last < int64(o.idle/2) || !o.swept.CompareAndSwap(last, now) {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, f := range o.files {
		if now-f.lastUse.Load() >= int64(o.idle) {
			delete(o.files, p)
			unix.Close(f.fd)
		}
	}
}

func (o *openFiles) closeAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for p, f := range o.files {
		delete(o.files, p)
		unix.Close(f.fd)
	}
}

// size is the number of files kept open (for tests).
func (o *openFiles) size() int {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return len(o.files)
}
