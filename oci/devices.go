package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/errdefs"
)

func i64p(v int64) *int64 { return &v }

// defaultDeviceRules are the device cgroup rules of every unprivileged container: deny everything, allow
// mknod, and allow the standard character devices runc creates.
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	rule := func(major, minor int64) specs.LinuxDeviceCgroup {
		r := specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "rwm"}
		if major >= 0 {
			r.Major = i64p(major)
		}
		if minor >= 0 {
			r.Minor = i64p(minor)
		}
		return r
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Access: "m"},
		{Allow: true, Type: "b", Access: "m"},
		rule(1, 3), rule(1, 5), rule(1, 7), rule(1, 8), rule(1, 9), // null zero full random urandom
		rule(5, 0), rule(5, 2), rule(136, -1), // tty ptmx pts/*
	}
}

// deviceFromPath describes the device node at path; ok is false for anything but char/block devices.
func deviceFromPath(path, containerPath string) (specs.LinuxDevice, bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return specs.LinuxDevice{}, false, &fs.PathError{Op: "lstat", Path: path, Err: err}
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return specs.LinuxDevice{}, false, nil
	}
	mode := os.FileMode(st.Mode & 0o777)
	uid, gid := st.Uid, st.Gid
	return specs.LinuxDevice{
		Path:     containerPath,
		Type:     typ,
		Major:    int64(unix.Major(uint64(st.Rdev))),
		Minor:    int64(unix.Minor(uint64(st.Rdev))),
		FileMode: &mode,
		UID:      &uid,
		GID:      &gid,
	}, true, nil
}

func validPermissions(p string) bool {
	if p == "" || len(p) > 3 {
		return false
	}
	for _, c := range p {
		if !strings.ContainsRune("rwm", c) || strings.Count(p, string(c)) > 1 {
			return false
		}
	}
	return true
}

func devices(p Params, s *specs.Spec, privileged bool) error {
	if privileged {
		s.Linux.Resources.Devices = []specs.LinuxDeviceCgroup{{Allow: true, Access: "rwm"}}
		hostDevs, err := HostDevices(p.Host.DevDir)
		if err != nil {
			return err
		}
		s.Linux.Devices = hostDevs
	} else {
		s.Linux.Resources.Devices = defaultDeviceRules()
	}

	for i, d := range p.Config.GetDevices() {
		perms := d.GetPermissions()
		if perms == "" {
			perms = "rwm"
		}
		if !validPermissions(perms) {
			return errdefs.InvalidArgument("devices[%d]: invalid permissions %q (a combination of r, w, m)", i, d.GetPermissions())
		}
		host := d.GetHostPath()
		if !filepath.IsAbs(host) {
			return errdefs.InvalidArgument("devices[%d]: host_path %q must be absolute", i, host)
		}
		ctr := d.GetContainerPath()
		if ctr == "" {
			ctr = host
		}
		if !isCleanAbs(ctr) {
			return errdefs.InvalidArgument("devices[%d]: container_path %q must be an absolute clean path", i, ctr)
		}
		real, err := filepath.EvalSymlinks(host)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return errdefs.NotFound("devices[%d]: host_path %q does not exist", i, host)
			}
			return errdefs.InvalidArgument("devices[%d]: host_path %q: %v", i, host, err)
		}
		st, err := os.Stat(real)
		if err != nil {
			return errdefs.InvalidArgument("devices[%d]: %v", i, err)
		}
		var found []specs.LinuxDevice
		if st.IsDir() {
			// A directory adds every device below it, at the same relative path under container_path.
			err = filepath.WalkDir(real, func(path string, e fs.DirEntry, err error) error {
				if err != nil || e.IsDir() {
					return err
				}
				rel, _ := filepath.Rel(real, path)
				dev, ok, err := deviceFromPath(path, filepath.Join(ctr, rel))
				if err == nil && ok {
					found = append(found, dev)
				}
				return err
			})
			if err != nil {
				return errdefs.InvalidArgument("devices[%d]: walk %q: %v", i, host, err)
			}
			if len(found) == 0 {
				return errdefs.InvalidArgument("devices[%d]: host_path %q contains no device nodes", i, host)
			}
		} else {
			dev, ok, err := deviceFromPath(real, ctr)
			if err != nil {
				return errdefs.InvalidArgument("devices[%d]: %v", i, err)
			}
			if !ok {
				return errdefs.InvalidArgument("devices[%d]: host_path %q is not a device node", i, host)
			}
			found = append(found, dev)
		}
		for _, dev := range found {
			s.Linux.Devices = replaceDevice(s.Linux.Devices, dev)
			if !privileged {
				s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{
					Allow: true, Type: dev.Type, Major: i64p(dev.Major), Minor: i64p(dev.Minor), Access: perms,
				})
			}
		}
	}
	return nil
}

func replaceDevice(list []specs.LinuxDevice, d specs.LinuxDevice) []specs.LinuxDevice {
	for i := range list {
		if list[i].Path == d.Path {
			list[i] = d
			return list
		}
	}
	return append(list, d)
}

// HostDevices lists the device nodes under dir ("" = /dev) as container devices at the same paths (dir is
// replaced by /dev), skipping /dev/pts, /dev/shm, /dev/mqueue and the console/ptmx runc sets up itself.
func HostDevices(dir string) ([]specs.LinuxDevice, error) {
	if dir == "" {
		dir = "/dev"
	}
	var out []specs.LinuxDevice
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if e.IsDir() {
			switch rel {
			case "pts", "shm", "mqueue", ".lxc", ".lxd-mounts":
				return filepath.SkipDir
			}
			return nil
		}
		switch rel {
		case "console", "ptmx", "tty":
			return nil
		}
		dev, ok, err := deviceFromPath(path, filepath.Join("/dev", rel))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if ok {
			out = append(out, dev)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list host devices in %s: %w", dir, err)
	}
	return out, nil
}
