package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// measureFloor times what any runtime must do for the benchmark's pod, without a runtime: a new network
// namespace pinned by a bind mount plus CNI ADD of the same conflist (libcni, the same plugins), then runc
// create + start of a busybox bundle running the same command. Teardown is runc delete --force, CNI DEL and
// unpinning the namespace. Everything is removed before it returns. It runs o.floorRuns lifecycles in a row.
func measureFloor(ctx context.Context, o *options) (*Results, error) {
	f, err := newFloorRunner(ctx, o, "floor")
	if err != nil {
		return nil, err
	}
	defer f.close()
	// The floor's execs are the children of this process (it runs nothing else meanwhile).
	var ec *execCounter
	if o.countExecs {
		if ec, err = startExecCounter([]int{os.Getpid()}, o.execLog.forRoots("floor")); err != nil {
			return nil, fmt.Errorf("--count-execs: %w", err)
		}
		defer ec.close()
	}
	for i := 0; i < o.floorRuns; i++ {
		if err := f.once(ctx); err != nil {
			return nil, err
		}
	}
	res := &Results{Label: "floor"}
	if ec != nil {
		if err := ec.lost(); err != nil {
			fmt.Fprintf(os.Stderr, "bench: floor exec counts are incomplete: %v\n", err)
		}
		addExecRows([]*Results{res}, "floor execs:", ec.snapshot(), o.floorRuns)
	}
	f.addRows(res, "floor")
	return res, nil
}

// floorRunner runs floor lifecycles one at a time (once), in a dir of its own below --work-dir, so they can run
// alone (measureFloor) or interleaved pod by pod with the endpoints' (--floor-interleave, benchStart).
type floorRunner struct {
	o                      *options
	dir, rootfs, stateRoot string
	cgroupParent           string
	list                   *libcni.NetworkConfigList
	cni                    *libcni.CNIConfig
	n                      int
	netT, runcT, total     []time.Duration
	down                   []time.Duration
	cpu                    cpuMeter
}

// newFloorRunner extracts the bench image into a rootfs below --work-dir/name and loads the conflist.
func newFloorRunner(ctx context.Context, o *options, name string) (*floorRunner, error) {
	f := &floorRunner{o: o, dir: filepath.Join(o.workDir, name), cgroupParent: o.floorParent}
	if name != "floor" {
		f.cgroupParent = o.floorParent + "-" + name
	}
	f.rootfs = filepath.Join(f.dir, "rootfs")
	f.stateRoot = filepath.Join(f.dir, "runc")
	if err := os.MkdirAll(filepath.Join(f.dir, "netns"), 0o755); err != nil {
		return nil, err
	}
	img, err := mirrorImage(ctx, o.mirror, o.image)
	if err != nil {
		f.close()
		return nil, fmt.Errorf("read %s: %w", o.image, err)
	}
	rc := mutate.Extract(img)
	err = untar(rc, f.rootfs)
	rc.Close()
	if err != nil {
		f.close()
		return nil, fmt.Errorf("extract %s: %w", o.image, err)
	}
	if f.list, err = confList(o.cniConfDir); err != nil {
		f.close()
		return nil, err
	}
	f.cni = libcni.NewCNIConfigWithCacheDir(o.cniBinDirs, filepath.Join(f.dir, "cni-cache"), nil)
	return f, nil
}

// once runs one floor lifecycle and records its times and the machine's CPU over it. The teardown is always
// done; the times are kept only when everything worked.
func (f *floorRunner) once(ctx context.Context) error {
	id := fmt.Sprintf("noded-bench-%s-%d-%d", filepath.Base(f.dir), os.Getpid(), f.n)
	f.n++
	nsPath := filepath.Join(f.dir, "netns", id)
	rt := &libcni.RuntimeConf{ContainerID: id, NetNS: nsPath, IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "noded-bench"}, {"K8S_POD_NAME", id}}}
	bundle := filepath.Join(f.dir, "bundles", id)
	if err := writeBundle(bundle, f.rootfs, nsPath, f.cgroupParent+"/"+id); err != nil {
		return err
	}
	f.cpu.begin(0)
	t0 := time.Now()
	err := pinNetns(nsPath)
	if err == nil {
		_, err = f.cni.AddNetworkList(ctx, f.list, rt)
	}
	t1 := time.Now()
	if err == nil {
		err = runcCmd(ctx, f.o.runc, f.stateRoot, "create", "--bundle", bundle, id)
	}
	if err == nil {
		err = runcCmd(ctx, f.o.runc, f.stateRoot, "start", id)
	}
	t2 := time.Now()
	derr := errors.Join(
		killAndDelete(context.WithoutCancel(ctx), f.o.runc, f.stateRoot, id),
		cniDel(context.WithoutCancel(ctx), f.cni, f.list, rt),
		unpinNetns(nsPath),
		removeCgroupTree(f.cgroupParent+"/"+id),
		os.RemoveAll(bundle),
	)
	t3 := time.Now()
	f.cpu.end(1)
	if err != nil {
		return errors.Join(err, derr)
	}
	if derr != nil {
		return derr
	}
	f.netT, f.runcT = append(f.netT, t1.Sub(t0)), append(f.runcT, t2.Sub(t1))
	f.total, f.down = append(f.total, t2.Sub(t0)), append(f.down, t3.Sub(t2))
	return nil
}

// addRows adds the floor's rows, named prefix + " total p50" and so on, to res.
func (f *floorRunner) addRows(res *Results, prefix string) {
	res.addLatencies(prefix+" netns+CNI ADD", f.netT)
	res.addLatencies(prefix+" runc create+start", f.runcT)
	res.addLatencies(prefix+" total", f.total)
	res.addLatencies(prefix+" teardown", f.down)
	machine, _ := f.cpu.perItemMs()
	res.add(prefix+" machine CPU per pod lifecycle", machine, "ms", true)
}

// close removes the runner's dir and cgroup parent.
func (f *floorRunner) close() {
	_ = removeCgroupTree(f.cgroupParent)
	_ = os.RemoveAll(f.dir)
}

// killAndDelete is the least a runtime must do to remove a running container of its own PID namespace: SIGKILL
// to its init through a pidfd (the kernel kills the rest of the namespace), wait for the exit, then a plain
// runc delete. runc 1.5.2's delete --force always takes its kill path, which sleeps 100 ms before it checks
// whether the init is gone, so a floor using it would be 100 ms slower than a runtime has to be. Anything
// unexpected (no state, no pidfd) falls back to delete --force.
func killAndDelete(ctx context.Context, runc, root, id string) error {
	var st struct {
		Pid int `json:"init_process_pid"`
	}
	data, err := os.ReadFile(filepath.Join(root, id, "state.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err == nil && st.Pid > 0 {
		if fd, perr := unix.PidfdOpen(st.Pid, 0); perr == nil {
			err = unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
			if err == nil {
				// The pidfd turns readable when the process exits (it is not our child, so no wait).
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
				for {
					n, perr := unix.Poll(fds, 5000)
					if perr == unix.EINTR {
						continue
					}
					if perr != nil || n == 0 {
						err = fmt.Errorf("wait for %d: %v (n=%d)", st.Pid, perr, n)
					}
					break
				}
			}
			unix.Close(fd)
			if err == nil && runcCmd(ctx, runc, root, "delete", id) == nil {
				return nil
			}
		}
	}
	return runcCmd(ctx, runc, root, "delete", "--force", id)
}

// runcCmd runs runc with its stdio on /dev/null (runc create hands its stdio to the container, so a pipe would
// stay open for the container's lifetime); runc's own error messages go to a log file that an error quotes.
func runcCmd(ctx context.Context, runc, root string, args ...string) error {
	logPath := filepath.Join(root, fmt.Sprintf("runc-%s.log", args[len(args)-1]))
	if err := os.MkdirAll(root, 0o700); err != nil {
		return err
	}
	defer os.Remove(logPath)
	cmd := exec.CommandContext(ctx, runc, append([]string{"--root", root, "--log", logPath}, args...)...)
	if err := cmd.Run(); err != nil {
		msg, _ := os.ReadFile(logPath)
		return fmt.Errorf("runc %s: %w: %s", args[0], err, strings.TrimSpace(string(msg)))
	}
	return nil
}

// cniDel runs CNI DEL. A failure is reported and ignored: on a shared machine another tool's iptables cleanup
// can remove the pod's chain before DEL (the bridge plugin then fails), which is no fault of the floor.
func cniDel(ctx context.Context, cni *libcni.CNIConfig, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	if err := cni.DelNetworkList(ctx, list, rt); err != nil {
		fmt.Fprintf(os.Stderr, "bench: floor: CNI DEL of %s (ignored): %v\n", rt.ContainerID, err)
	}
	return nil
}

// pinNetns makes a new network namespace and bind-mounts it on path, on a thread of its own that ends with the
// goroutine (so no other goroutine runs in that namespace).
func pinNetns(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(src, path, "", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("pin netns: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

func unpinNetns(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// confList loads the first .conflist of dir.
func confList(dir string) (*libcni.NetworkConfigList, error) {
	files, err := libcni.ConfFiles(dir, []string{".conflist"})
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no .conflist in %s: %v", dir, err)
	}
	return libcni.NetworkConfFromFile(files[0])
}

// writeBundle writes config.json of a busybox container sharing rootfs (read-only) that runs "sleep 3600" in
// new pid, ipc, uts and mount namespaces and the given network namespace, the defaults runc spec uses.
func writeBundle(bundle, rootfs, netns, cgroup string) error {
	if err := os.MkdirAll(bundle, 0o700); err != nil {
		return err
	}
	caps := []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
		"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
		"CAP_KILL", "CAP_AUDIT_WRITE"}
	spec := specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"sleep", "3600"}, Cwd: "/",
			Env:          []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Capabilities: &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps},
		},
		Root:     &specs.Root{Path: rootfs, Readonly: true},
		Hostname: "bench",
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		},
		Linux: &specs.Linux{
			CgroupsPath: cgroup,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace, Path: netns},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
				"/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"},
			ReadonlyPaths: []string{"/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), data, 0o600)
}

// untar extracts a flattened image filesystem (no whiteouts) into dir: directories, regular files, symlinks
// and hard links; device nodes are skipped.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean("/" + h.Name)
		if name == "/" {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, os.FileMode(h.Mode)&os.ModePerm); err != nil {
				return err
			}
		case tar.TypeReg:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&os.ModePerm)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			f.Close()
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(p)
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		case tar.TypeLink:
			_ = os.Remove(p)
			if err := os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), p); err != nil {
				return err
			}
		}
		_ = os.Lchown(p, h.Uid, h.Gid)
	}
}
