package cgroupsv2

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"

	cgstats "github.com/noded/noded/cgroupsv2/stats"
	"github.com/noded/noded/errdefs"
)

// ScopePrefix is the prefix of noded's container scopes: a container with runtime ID <id> runs in the
// transient unit noded-<id>.scope.
const ScopePrefix = "noded"

// Systemd places each container in a transient scope unit, noded-<id>.scope, inside its pod's slice. The OCI
// runtime's own systemd driver (runc --systemd-cgroup with linux.cgroupsPath "<slice>:noded:<id>") creates the
// scope through systemd's D-Bus API with Delegate=yes and the container's limits as unit properties, and stops
// it on delete; systemd creates missing slices (kubelet's kubepods-burstable-pod<uid>.slice) on demand.
type Systemd struct {
	parent string
	units  units
	fs     *FS
}

// units is what the driver needs of systemd's manager.
type units interface {
	// Stop stops the unit and resets its failed state; a unit systemd does not know is success.
	Stop(ctx context.Context, unit string) error
}

// Name implements Driver.
func (*Systemd) Name() string { return DriverSystemd }

// SystemdCgroup implements Driver.
func (*Systemd) SystemdCgroup() bool { return true }

// DefaultParent implements Driver.
func (d *Systemd) DefaultParent() string { return d.parent }

// slice returns the slice unit name of parent. kubelet sends the expanded form
// ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice"); the bare unit name
// ("kubepods-burstable-pod<uid>.slice") is accepted too. A path must be exactly the slice's expansion.
func (d *Systemd) slice(parent string) (string, error) {
	if parent == "" {
		parent = d.parent
	}
	name := path.Base(parent)
	dir, err := cgstats.ExpandSlice(name)
	if err != nil {
		return "", errdefs.InvalidArgument("cgroup parent %q: the systemd driver needs a slice: %v", parent, err)
	}
	if strings.Contains(parent, "/") && path.Clean(parent) != dir {
		return "", errdefs.InvalidArgument("cgroup parent %q is not where systemd places %s (%s)", parent, name, dir)
	}
	return name, nil
}

// ValidateParent implements Driver.
func (d *Systemd) ValidateParent(parent string) error {
	if parent == "" {
		return nil
	}
	_, err := d.slice(parent)
	return err
}

// ParentDir implements Driver.
func (d *Systemd) ParentDir(parent string) (string, error) {
	s, err := d.slice(parent)
	if err != nil {
		return "", err
	}
	return cgstats.ExpandSlice(s)
}

// CgroupsPath implements Driver: "<slice>:noded:<name>".
func (d *Systemd) CgroupsPath(parent, name string) (string, error) {
	if err := validName(name); err != nil {
		return "", err
	}
	if strings.HasSuffix(name, ".slice") {
		return "", errdefs.InvalidArgument("container cgroup name %q must not be a slice", name)
	}
	s, err := d.slice(parent)
	if err != nil {
		return "", err
	}
	return s + ":" + ScopePrefix + ":" + name, nil
}

// Dir implements Driver.
func (*Systemd) Dir(cgroupsPath string) (string, error) { return cgstats.ResolvePath(cgroupsPath) }

// Remove implements Driver: stops the scope if its cgroup still exists (systemd removes the cgroup with it). An
// absolute path (a container made under the cgroupfs driver) is removed as a directory.
func (d *Systemd) Remove(ctx context.Context, cgroupsPath string) error {
	dir, err := d.Dir(cgroupsPath)
	if err != nil {
		return err
	}
	if strings.HasPrefix(cgroupsPath, "/") {
		return d.fs.Remove(dir)
	}
	if len(d.fs.Exists(dir)) == 0 {
		return nil
	}
	if err := d.units.Stop(ctx, path.Base(dir)); err != nil {
		return fmt.Errorf("stop %s: %w", path.Base(dir), err)
	}
	// A scope stopped while its processes ignore SIGTERM is killed by systemd; its cgroup is gone once the stop
	// job finished. Anything left is reported.
	if left := d.fs.Exists(dir); len(left) > 0 {
		return errdefs.FailedPrecondition("cgroup %s remains after stopping its scope", left[0])
	}
	return nil
}

// dbusUnits talks to systemd over D-Bus, one connection per call (calls are rare: leftovers only).
type dbusUnits struct{}

func (dbusUnits) Stop(ctx context.Context, unit string) error {
	conn, err := sddbus.NewWithContext(ctx)
	if err != nil {
		return fmt.Errorf("connect to systemd: %w", err)
	}
	defer conn.Close()
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, unit, "replace", done); err != nil {
		if isNoSuchUnit(err) {
			return nil
		}
		return err
	}
	select {
	case res := <-done:
		if res != "done" {
			return fmt.Errorf("stop job %s", res)
		}
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := conn.ResetFailedUnitContext(ctx, unit); err != nil && !isNoSuchUnit(err) {
		return fmt.Errorf("reset failed state: %w", err)
	}
	return nil
}

func isNoSuchUnit(err error) bool {
	var de godbus.Error
	if errors.As(err, &de) {
		return strings.HasSuffix(de.Name, ".NoSuchUnit") || strings.HasSuffix(de.Name, ".UnitNotLoaded")
	}
	return false
}
