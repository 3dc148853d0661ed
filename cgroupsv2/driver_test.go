package cgroupsv2

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/noded/noded/errdefs"
)

func TestNewDefaults(t *testing.T) {
	for _, c := range []struct {
		driver, parent, wantParent string
		systemd                    bool
		wantErr                    bool
	}{
		{DriverSystemd, "", "noded.slice", true, false},
		{DriverCgroupfs, "", "/noded", false, false},
		{DriverSystemd, "kubepods.slice", "kubepods.slice", true, false},
		{DriverCgroupfs, "/kubepods", "/kubepods", false, false},
		{DriverSystemd, "/noded", "", true, true},        // not a slice
		{DriverCgroupfs, "noded.slice", "", false, true}, // not absolute
		{"auto", "", "", false, true},                    // resolve with ChooseDriver first
	} {
		d, err := New(c.driver, c.parent)
		if c.wantErr {
			if err == nil {
				t.Errorf("New(%q, %q) = %v, want an error", c.driver, c.parent, d.DefaultParent())
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q, %q): %v", c.driver, c.parent, err)
			continue
		}
		if d.Name() != c.driver || d.DefaultParent() != c.wantParent || d.SystemdCgroup() != c.systemd {
			t.Errorf("New(%q, %q) = %s %q systemd=%v", c.driver, c.parent, d.Name(), d.DefaultParent(), d.SystemdCgroup())
		}
	}
}

func TestSystemdPaths(t *testing.T) {
	d, err := New(DriverSystemd, "")
	if err != nil {
		t.Fatal(err)
	}
	const expanded = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod12.slice"
	for _, c := range []struct {
		parent, wantPath, wantDir, wantParentDir string
	}{
		// kubelet's form: the slice's full path.
		{expanded, "kubepods-burstable-pod12.slice:noded:abc",
			expanded + "/noded-abc.scope", expanded},
		// The bare unit name.
		{"kubepods-burstable-pod12.slice", "kubepods-burstable-pod12.slice:noded:abc",
			expanded + "/noded-abc.scope", expanded},
		// critest's parent.
		{"/test.slice", "test.slice:noded:abc", "/test.slice/noded-abc.scope", "/test.slice"},
		// No parent: the default.
		{"", "noded.slice:noded:abc", "/noded.slice/noded-abc.scope", "/noded.slice"},
	} {
		p, err := d.CgroupsPath(c.parent, "abc")
		if err != nil || p != c.wantPath {
			t.Errorf("CgroupsPath(%q) = %q, %v; want %q", c.parent, p, err, c.wantPath)
			continue
		}
		if dir, err := d.Dir(p); err != nil || dir != c.wantDir {
			t.Errorf("Dir(%q) = %q, %v; want %q", p, dir, err, c.wantDir)
		}
		if dir, err := d.ParentDir(c.parent); err != nil || dir != c.wantParentDir {
			t.Errorf("ParentDir(%q) = %q, %v; want %q", c.parent, dir, err, c.wantParentDir)
		}
		if err := d.ValidateParent(c.parent); err != nil {
			t.Errorf("ValidateParent(%q): %v", c.parent, err)
		}
	}
}

func TestSystemdRejectsParents(t *testing.T) {
	d, err := New(DriverSystemd, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, parent := range []string{
		"/kubepods/burstable/pod12",                        // cgroupfs form
		"/kubepods.slice/kubepods-burstable-pod12.slice",   // not where systemd puts that slice
		"/other.slice/kubepods-burstable-pod12.slice",      // same
		"kubepods--x.slice", "-kubepods.slice", "a-.slice", // malformed slice names
		"pod12",
	} {
		if err := d.ValidateParent(parent); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ValidateParent(%q) = %v, want InvalidArgument", parent, err)
		}
		if _, err := d.CgroupsPath(parent, "abc"); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CgroupsPath(%q) = %v, want InvalidArgument", parent, err)
		}
	}
	for _, name := range []string{"", "a/b", "a:b", "x.slice", ".."} {
		if _, err := d.CgroupsPath("", name); !errdefs.IsInvalidArgument(err) {
			t.Errorf("CgroupsPath(name %q) = %v, want InvalidArgument", name, err)
		}
	}
}

func TestCgroupfsPaths(t *testing.T) {
	d, err := New(DriverCgroupfs, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ parent, want string }{
		{"/kubepods/burstable/pod12", "/kubepods/burstable/pod12/abc"},
		{"/kubepods/burstable/pod12/", "/kubepods/burstable/pod12/abc"},
		{"", "/noded/abc"},
	} {
		p, err := d.CgroupsPath(c.parent, "abc")
		if err != nil || p != c.want {
			t.Errorf("CgroupsPath(%q) = %q, %v; want %q", c.parent, p, err, c.want)
			continue
		}
		if dir, err := d.Dir(p); err != nil || dir != c.want {
			t.Errorf("Dir(%q) = %q, %v", p, dir, err)
		}
	}
	for _, parent := range []string{"kubepods", "kubepods-burstable.slice", "/a/../b", "/a:b"} {
		if err := d.ValidateParent(parent); !errdefs.IsInvalidArgument(err) {
			t.Errorf("ValidateParent(%q) = %v, want InvalidArgument", parent, err)
		}
	}
	// A container made under the systemd driver is still found.
	if dir, err := d.Dir("kubepods-pod1.slice:noded:abc"); err != nil || dir != "/kubepods.slice/kubepods-pod1.slice/noded-abc.scope" {
		t.Errorf("Dir(systemd form) = %q, %v", dir, err)
	}
}

// fakeUnits records stops and removes the unit's cgroup directory as systemd would.
type fakeUnits struct {
	root    string
	dirs    map[string]string // unit -> its cgroup dir below root
	stopped []string
	err     error
}

func (f *fakeUnits) Stop(_ context.Context, unit string) error {
	f.stopped = append(f.stopped, unit)
	if f.err != nil {
		return f.err
	}
	if d, ok := f.dirs[unit]; ok {
		return os.RemoveAll(filepath.Join(f.root, d))
	}
	return nil
}

// mkcgroup makes a fake cgroup directory (a dir with cgroup.procs) holding procs.
func mkcgroup(t *testing.T, root, dir, procs string) {
	t.Helper()
	p := filepath.Join(root, dir)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p, "cgroup.procs"), []byte(procs), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestSystemdRemoveStopsTheScopeOnlyWhenItsCgroupExists(t *testing.T) {
	root := t.TempDir()
	// A v1-style layout below root: one hierarchy directory (a fake "unified").
	h := filepath.Join(root, "unified")
	mkcgroup(t, h, "/", "")
	units := &fakeUnits{root: h, dirs: map[string]string{"noded-abc.scope": "/kubepods.slice/kubepods-pod1.slice/noded-abc.scope"}}
	d := &Systemd{parent: DefaultSystemdParent, units: units, fs: NewFS(root)}
	ctx := context.Background()

	// Gone already: nothing to stop.
	if err := d.Remove(ctx, "kubepods-pod1.slice:noded:abc"); err != nil {
		t.Fatal(err)
	}
	if len(units.stopped) != 0 {
		t.Fatalf("stopped %v for a scope whose cgroup is gone", units.stopped)
	}
	// Left behind: the scope is stopped and its cgroup goes with it.
	mkcgroup(t, h, "/kubepods.slice/kubepods-pod1.slice/noded-abc.scope", "123\n")
	if err := d.Remove(ctx, "kubepods-pod1.slice:noded:abc"); err != nil {
		t.Fatal(err)
	}
	if len(units.stopped) != 1 || units.stopped[0] != "noded-abc.scope" {
		t.Fatalf("stopped %v, want [noded-abc.scope]", units.stopped)
	}
	// A stop that leaves the cgroup is reported.
	units.dirs = nil
	mkcgroup(t, h, "/kubepods.slice/kubepods-pod1.slice/noded-abc.scope", "")
	if err := d.Remove(ctx, "kubepods-pod1.slice:noded:abc"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove with the cgroup left = %v, want FailedPrecondition", err)
	}
	units.err = errors.New("dbus down")
	if err := d.Remove(ctx, "kubepods-pod1.slice:noded:abc"); err == nil {
		t.Fatal("Remove with a failing stop succeeded")
	}
}

func TestFSRemove(t *testing.T) {
	root := t.TempDir()
	// Hybrid: two hierarchies, the cgroup exists in both.
	for _, h := range []string{"memory", "unified"} {
		mkcgroup(t, filepath.Join(root, h), "/", "")
	}
	if err := os.WriteFile(filepath.Join(root, "not-a-hierarchy"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fs := NewFS(root)
	mkcgroup(t, filepath.Join(root, "memory"), "/noded/c1", "42\n")
	mkcgroup(t, filepath.Join(root, "unified"), "/noded/c1", "")
	if got := fs.Exists("/noded/c1"); len(got) != 2 {
		t.Fatalf("Exists = %v, want both hierarchies", got)
	}
	err := fs.Remove("/noded/c1")
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Remove of a cgroup with processes = %v, want FailedPrecondition", err)
	}
	// The hierarchy without processes was tried: a fake cgroup keeps its cgroup.procs file, so rmdir fails there
	// with ENOTEMPTY (a real one holds only kernel files and goes).
	if !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("Remove = %v, want the unified copy's rmdir attempted (ENOTEMPTY)", err)
	}
	if err := fs.Remove("/noded/absent"); err != nil {
		t.Fatalf("Remove of an absent cgroup: %v", err)
	}
	for _, bad := range []string{"/", "noded/c1", "/noded/../x"} {
		if err := fs.Remove(bad); !errdefs.IsInvalidArgument(err) {
			t.Errorf("Remove(%q) = %v, want InvalidArgument", bad, err)
		}
	}
}
