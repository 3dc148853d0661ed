// Package cgroupsv2 places containers in cgroups: through systemd (transient scopes, delegated) where systemd runs
// on a pure cgroup v2 hierarchy, through cgroupfs with absolute paths otherwise.
package cgroupsv2

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Driver names, as kubelet spells them.
const (
	DriverSystemd  = "systemd"
	DriverCgroupfs = "cgroupfs"
)

// Host describes the facts of the machine that choose a driver.
type Host struct {
	SystemdPID1 bool // systemd is the init system (/run/systemd/system exists)
	Unified     bool // /sys/fs/cgroup is a cgroup2 mount (no v1 controllers)
}

// DetectHost reads the host's init system and cgroup layout.
func DetectHost() Host {
	var h Host
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		h.SystemdPID1 = true
	}
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		h.Unified = true
	}
	return h
}

// ChooseDriver resolves the configured driver ("auto", "systemd", "cgroupfs") against the host.
func ChooseDriver(configured string, h Host) (string, error) {
	switch configured {
	case "", "auto":
		if h.SystemdPID1 && h.Unified {
			return DriverSystemd, nil
		}
		return DriverCgroupfs, nil
	case DriverSystemd:
		if !h.SystemdPID1 {
			return "", fmt.Errorf("cgroup driver systemd requested, but systemd is not the init system")
		}
		return DriverSystemd, nil
	case DriverCgroupfs:
		return DriverCgroupfs, nil
	}
	return "", fmt.Errorf("unknown cgroup driver %q", configured)
}
