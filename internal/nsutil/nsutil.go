//go:build linux

// Package nsutil creates and pins a pod's namespaces (net, ipc, uts) with bind mounts, without an infra process,
// and runs code inside pinned namespaces: setting the hostname, applying namespaced sysctls, configuring the network.
//
// Layout: Pin(ctx, dir, types) creates one regular file per type, dir/<type> (for example /run/noded/ns/<pod>/net),
// and bind-mounts the namespace file of a thread that unshared those namespaces onto it. The bind mount keeps the
// namespace alive until Unpin. Callers should call PrepareRoot once on the directory that holds all pins (see there).
//
// Threads: every namespace switch happens on a fresh goroutine locked to its OS thread. After the work the
// thread is moved back to its original namespaces; if that fails the goroutine exits while still locked, so the Go
// runtime terminates the thread instead of reusing it in a foreign namespace.
package nsutil

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

// Type is a namespace kind as named under /proc/<pid>/ns.
type Type string

// Namespace types that can be pinned.
const (
	Net Type = "net"
	IPC Type = "ipc"
	UTS Type = "uts"
)

func (t Type) cloneFlag() (int, error) {
	switch t {
	case Net:
		return unix.CLONE_NEWNET, nil
	case IPC:
		return unix.CLONE_NEWIPC, nil
	case UTS:
		return unix.CLONE_NEWUTS, nil
	}
	return 0, errdefs.InvalidArgument("unsupported namespace type %q", string(t))
}

// Pin creates new namespaces of the given types and pins each at dir/<type> with a bind mount. dir is created
// (mode 0700) if missing. It returns the pinned path per type. A pin that already exists yields an AlreadyExists
// error; on any failure the pins made so far are removed. Cost: one unshare plus one bind mount per type.
func Pin(ctx context.Context, dir string, types []Type) (map[Type]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(types) == 0 {
		return map[Type]string{}, nil
	}
	flags, err := cloneFlags(types)
	if err != nil {
		return nil, err
	}
	paths, err := createPinFiles(dir, types)
	if err != nil {
		return nil, err
	}

	err = onLockedThread(types, func() error {
		if err := unix.Unshare(flags); err != nil {
			return fmt.Errorf("unshare %v: %w", types, err)
		}
		tid := unix.Gettid()
		for _, t := range types {
			src := fmt.Sprintf("/proc/self/task/%d/ns/%s", tid, t)
			if err := unix.Mount(src, paths[t], "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind mount %s namespace to %s: %w", t, paths[t], err)
			}
		}
		return nil
	})
	if err != nil {
		_ = unpinAll(paths)
		return nil, err
	}
	return paths, nil
}

// Unpin unmounts (lazily) and removes one pin file. It is idempotent: a missing or unmounted path is not an error.
// The namespace itself disappears once no process, mount or open file refers to it any more.
func Unpin(path string) error {
	if path == "" {
		return nil
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount namespace pin %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace pin %s: %w", path, err)
	}
	return nil
}

// UnpinAll unpins every path of a Pin result and returns the joined errors.
func UnpinAll(paths map[Type]string) error { return unpinAll(paths) }

func unpinAll(paths map[Type]string) error {
	var errs []error
	for _, p := range paths {
		errs = append(errs, Unpin(p))
	}
	return errors.Join(errs...)
}

// WithNetNS runs fn on a locked OS thread that has joined the network namespace pinned (or otherwise found) at
// path. Sockets fn creates belong to that namespace; goroutines fn starts do not run in it.
func WithNetNS(path string, fn func() error) error { return WithNS(path, Net, fn) }

// WithNS runs fn on a locked OS thread that has joined the namespace of type t at path, then moves the thread
// back. It returns fn's error, or an error when the namespace cannot be entered (NotFound if path is missing).
func WithNS(path string, t Type, fn func() error) error {
	flag, err := t.cloneFlag()
	if err != nil {
		return err
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return errdefs.NotFound("namespace %s not found", path)
		}
		return fmt.Errorf("open namespace %s: %w", path, err)
	}
	defer unix.Close(fd)
	return onLockedThread([]Type{t}, func() error {
		if err := unix.Setns(fd, flag); err != nil {
			return fmt.Errorf("join %s namespace %s: %w", t, path, err)
		}
		return fn()
	})
}

// onLockedThread runs fn on a new goroutine locked to its thread, saving the thread's namespaces of the given
// types first and restoring them afterwards. If restoring fails, the thread stays locked and dies with the
// goroutine.
func onLockedThread(types []Type, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig := make(map[Type]int, len(types))
		closeOrig := func() {
			for _, fd := range orig {
				_ = unix.Close(fd)
			}
		}
		for _, t := range types {
			fd, err := unix.Open(fmt.Sprintf("/proc/thread-self/ns/%s", t), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			if err != nil {
				closeOrig()
				runtime.UnlockOSThread()
				done <- fmt.Errorf("open current %s namespace: %w", t, err)
				return
			}
			orig[t] = fd
		}
		fnErr := fn()
		var restoreErr error
		for t, fd := range orig {
			flag, _ := t.cloneFlag()
			if err := unix.Setns(fd, flag); err != nil {
				restoreErr = errors.Join(restoreErr, fmt.Errorf("restore %s namespace: %w", t, err))
			}
		}
		closeOrig()
		if restoreErr == nil {
			runtime.UnlockOSThread()
		}
		// Otherwise the goroutine ends locked: the runtime terminates the thread.
		done <- errors.Join(fnErr, restoreErr)
	}()
	return <-done
}

// cloneFlags is the CLONE_NEW* flags of types; a type listed twice is an error.
func cloneFlags(types []Type) (int, error) {
	flags := 0
	seen := map[Type]bool{}
	for _, t := range types {
		f, err := t.cloneFlag()
		if err != nil {
			return 0, err
		}
		if seen[t] {
			return 0, errdefs.InvalidArgument("namespace type %q listed twice", string(t))
		}
		seen[t] = true
		flags |= f
	}
	return flags, nil
}

// createPinFiles creates dir (mode 0700) and an empty file dir/<type> for each type to bind-mount a namespace
// on. An existing file yields AlreadyExists; on failure the files made so far are removed.
func createPinFiles(dir string, types []Type) (map[Type]string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create pin dir: %w", err)
	}
	paths := make(map[Type]string, len(types))
	for _, t := range types {
		p := filepath.Join(dir, string(t))
		f, err := os.OpenFile(p, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o400)
		if err != nil {
			_ = unpinAll(paths)
			if errors.Is(err, os.ErrExist) {
				return nil, errdefs.AlreadyExists("namespace pin %s already exists", p)
			}
			return nil, fmt.Errorf("create pin file: %w", err)
		}
		_ = f.Close()
		paths[t] = p
	}
	return paths, nil
}
