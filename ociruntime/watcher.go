package ociruntime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ExitEvent reports that conmon recorded the exit of container ID.
type ExitEvent struct {
	ID       string
	ExitCode int
	ExitedAt time.Time // modification time of the exit file
}

// Watcher reports container exits by watching an exit directory with inotify. conmon writes
// <dir>/<id> atomically (temporary file renamed into place), so only renames into the
// directory are events. If the kernel's inotify queue overflows, every exit file present is
// reported again: consumers must tolerate duplicate events.
type Watcher struct {
	dir    string
	f      *os.File
	events chan ExitEvent
	done   chan struct{}
	wg     sync.WaitGroup
	once   sync.Once

	errMu sync.Mutex
	err   error
}

// NewWatcher starts watching dir (created if missing). Events are delivered on Events() until
// Close. Exits that happened before NewWatcher are not reported: read them with ReadExitFile.
func NewWatcher(dir string) (*Watcher, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("exit watcher: %w", err)
	}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("exit watcher: inotify_init: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_MOVED_TO|unix.IN_ONLYDIR); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("exit watcher: watch %s: %w", dir, err)
	}
	w := &Watcher{
		dir: dir,
		// A non-blocking fd is served by Go's poller, so Close interrupts a pending Read.
		f:      os.NewFile(uintptr(fd), "inotify:"+dir),
		events: make(chan ExitEvent, 128),
		done:   make(chan struct{}),
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

// Events delivers exits; it is closed when the watcher stops.
func (w *Watcher) Events() <-chan ExitEvent { return w.events }

// Err reports why the watcher stopped on its own (nil after Close).
func (w *Watcher) Err() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// Close stops the watcher and waits for its goroutine to end.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() {
		close(w.done)
		err = w.f.Close()
		w.wg.Wait()
	})
	return err
}

func (w *Watcher) loop() {
	defer w.wg.Done()
	defer close(w.events)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			select {
			case <-w.done:
			default:
				w.errMu.Lock()
				w.err = fmt.Errorf("exit watcher %s: read: %w", w.dir, err)
				w.errMu.Unlock()
			}
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				if !w.rescan() {
					return
				}
			case ev.Mask&unix.IN_MOVED_TO != 0:
				name := strings.TrimRight(string(nameBytes), "\x00")
				if !w.report(name) {
					return
				}
			}
		}
	}
}

// report sends the event for exit file name; false when the watcher is closing.
func (w *Watcher) report(name string) bool {
	if name == "" || strings.HasPrefix(name, ".") {
		return true
	}
	code, at, err := ReadExitFile(filepath.Join(w.dir, name))
	if err != nil {
		// Removed again already, or not an exit file: nothing to report.
		return true
	}
	select {
	case w.events <- ExitEvent{ID: name, ExitCode: code, ExitedAt: at}:
		return true
	case <-w.done:
		return false
	}
}

func (w *Watcher) rescan() bool {
	entries, err := os.ReadDir(w.dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return true
	}
	for _, e := range entries {
		if e.Type().IsRegular() && !w.report(e.Name()) {
			return false
		}
	}
	return true
}
