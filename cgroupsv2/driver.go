package cgroupsv2

import (
	"context"
	"fmt"
	"path"
	"strings"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
)

// Driver is how noded places containers in cgroups. It names a container's cgroup for the OCI runtime (which
// creates it: runc's own systemd driver or its cgroupfs driver, chosen by SystemdCgroup), finds the cgroup's
// directory in the hierarchy (for stats, OOM detection and leak checks) and removes what a runtime left behind.
// Resource updates go through the OCI runtime (`runc update`), which applies them to the live cgroup the way it
// created it (unit properties and files under systemd, files under cgroupfs).
type Driver interface {
	// Name is DriverSystemd or DriverCgroupfs, as RuntimeConfig reports it to kubelet.
	Name() string
	// SystemdCgroup reports whether the OCI runtime must run with --systemd-cgroup.
	SystemdCgroup() bool
	// DefaultParent is the parent of pods whose config names none.
	DefaultParent() string
	// ValidateParent checks a pod's cgroup parent as kubelet sends it; "" (the default parent) is valid.
	ValidateParent(parent string) error
	// CgroupsPath is the OCI linux.cgroupsPath of the container named name (a runtime ID) in a pod under parent.
	CgroupsPath(parent, name string) (string, error)
	// ParentDir is the hierarchy path (for example "/kubepods.slice/kubepods-burstable.slice") of parent.
	ParentDir(parent string) (string, error)
	// Dir is the hierarchy path of the cgroup named by cgroupsPath. Both forms are understood (absolute, and
	// systemd's slice:prefix:name), so containers made under another driver are still found.
	Dir(cgroupsPath string) (string, error)
	// Remove removes the container cgroup named by cgroupsPath if the runtime left it behind (a container that
	// never ran, a runtime that crashed); a cgroup that is gone is success.
	Remove(ctx context.Context, cgroupsPath string) error
}

// New returns the driver named name (DriverSystemd or DriverCgroupfs; resolve "auto" with ChooseDriver first).
// defaultParent overrides the driver's default pod parent ("noded.slice" or "/noded") when not empty.
func New(name, defaultParent string) (Driver, error) {
	var d Driver
	switch name {
	case DriverSystemd:
		if defaultParent == "" {
			defaultParent = DefaultSystemdParent
		}
		d = &Systemd{parent: defaultParent, units: dbusUnits{}, fs: NewFS(cgstats.DefaultRoot)}
	case DriverCgroupfs:
		if defaultParent == "" {
			defaultParent = DefaultCgroupfsParent
		}
		d = &Cgroupfs{parent: defaultParent, fs: NewFS(cgstats.DefaultRoot)}
	default:
		return nil, fmt.Errorf("unknown cgroup driver %q", name)
	}
	if err := d.ValidateParent(defaultParent); err != nil {
		return nil, fmt.Errorf("default cgroup parent: %w", err)
	}
	return d, nil
}

// Default pod parents.
const (
	DefaultSystemdParent  = "noded.slice"
	DefaultCgroupfsParent = "/noded"
)

// validName reports whether a container name can be part of a cgroup path or unit name.
func validName(name string) error {
	if name == "" || strings.ContainsAny(name, "/:\x00") || name == "." || name == ".." {
		return errdefs.InvalidArgument("invalid cgroup name %q", name)
	}
	return nil
}

// ---- cgroupfs ----

// Cgroupfs places containers at absolute paths below their pod's parent; the OCI runtime creates and removes
// the directories itself.
type Cgroupfs struct {
	parent string
	fs     *FS
}

// Name implements Driver.
func (*Cgroupfs) Name() string { return DriverCgroupfs }

// SystemdCgroup implements Driver.
func (*Cgroupfs) SystemdCgroup() bool { return false }

// DefaultParent implements Driver.
func (d *Cgroupfs) DefaultParent() string { return d.parent }

// ValidateParent implements Driver: an absolute, clean path without "..".
func (d *Cgroupfs) ValidateParent(parent string) error {
	if parent == "" {
		return nil
	}
	if !strings.HasPrefix(parent, "/") {
		return errdefs.InvalidArgument("cgroup parent %q must be an absolute path with the cgroupfs driver", parent)
	}
	if strings.Contains(parent, "..") || strings.ContainsAny(parent, ":\x00") {
		return errdefs.InvalidArgument("cgroup parent %q must not contain .., : or NUL", parent)
	}
	return nil
}

// ParentDir implements Driver.
func (d *Cgroupfs) ParentDir(parent string) (string, error) {
	if parent == "" {
		parent = d.parent
	}
	if err := d.ValidateParent(parent); err != nil {
		return "", err
	}
	return path.Clean(parent), nil
}

// CgroupsPath implements Driver: <parent>/<name>.
func (d *Cgroupfs) CgroupsPath(parent, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	dir, err := d.ParentDir(parent)
	if err != nil {
		return "", err
	}
	return path.Join(dir, name), nil
}

// Dir implements Driver.
func (*Cgroupfs) Dir(cgroupsPath string) (string, error) { return cgstats.ResolvePath(cgroupsPath) }

// Remove implements Driver: removes the directory in every hierarchy it exists in, once it has no processes.
func (d *Cgroupfs) Remove(_ context.Context, cgroupsPath string) error {
	dir, err := d.Dir(cgroupsPath)
	if err != nil {
		return err
	}
	return d.fs.Remove(dir)
}
