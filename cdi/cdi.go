// Package cdi resolves the Container Device Interface devices a CRI container asks for (ContainerConfig.CDI_devices
// and the cdi.k8s.io/* annotations of device plugins) against the CDI spec files of the node and applies their
// edits (device nodes and their cgroup rules, environment, mounts, hooks) to the container's OCI spec.
package cdi

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	cdiapi "tags.cncf.io/container-device-interface/pkg/cdi"
	"tags.cncf.io/container-device-interface/pkg/parser"

	"github.com/noded/noded/errdefs"
)

// DefaultSpecDirs are the CDI spec directories of the CDI specification: static specs, then generated ones.
var DefaultSpecDirs = []string{"/etc/cdi", "/var/run/cdi"}

// AnnotationPrefix starts the container annotations by which device plugins request CDI devices.
const AnnotationPrefix = cdiapi.AnnotationPrefix

// Devices returns the fully qualified CDI device names the container asks for: CDI_devices in order, then the
// values of its cdi.k8s.io/* annotations (comma-separated lists) in key order, without duplicates. A name that is
// not vendor.com/class=name is InvalidArgument.
func Devices(cfg *runtimeapi.ContainerConfig) ([]string, error) {
	var out []string
	add := func(where, name string) error {
		if !parser.IsQualifiedName(name) {
			return errdefs.InvalidArgument("%s: %q is not a fully qualified CDI device name (vendor.com/class=name)", where, name)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
		return nil
	}
	for i, d := range cfg.GetCDIDevices() {
		if err := add(fmt.Sprintf("CDI_devices[%d]", i), d.GetName()); err != nil {
			return nil, err
		}
	}
	var keys []string
	for k := range cfg.GetAnnotations() {
		if strings.HasPrefix(k, AnnotationPrefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, d := range strings.Split(cfg.GetAnnotations()[k], ",") {
			if err := add("annotation "+k, strings.TrimSpace(d)); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// Registry is the CDI devices of the node, read from spec directories. It rescans them when devices are
// requested (no watcher goroutine), so specs written by a driver just before a container starts are seen.
type Registry struct {
	mu    sync.Mutex
	cache *cdiapi.Cache
	dirs  []string
}

// New returns a Registry of the spec files in dirs (empty: DefaultSpecDirs). Missing directories are not an
// error: they simply hold no devices.
func New(dirs []string) (*Registry, error) {
	if len(dirs) == 0 {
		dirs = DefaultSpecDirs
	}
	for _, d := range dirs {
		if !filepath.IsAbs(d) {
			return nil, fmt.Errorf("cdi: spec dir %q must be absolute", d)
		}
	}
	cache, err := cdiapi.NewCache(cdiapi.WithSpecDirs(dirs...), cdiapi.WithAutoRefresh(false))
	if err != nil {
		return nil, fmt.Errorf("cdi: %w", err)
	}
	return &Registry{cache: cache, dirs: slices.Clone(dirs)}, nil
}

// SpecDirs returns the directories the registry reads.
func (r *Registry) SpecDirs() []string { return slices.Clone(r.dirs) }

// refresh rescans the spec dirs. Errors of spec files that do not load are returned for messages only: a broken
// spec of one vendor must not keep the devices of the others from being used.
func (r *Registry) refresh() error {
	return r.cache.Refresh()
}

// Check fails with FailedPrecondition naming every device of devices that no spec file defines (the node lacks
// the device, or its driver has not written the spec yet: a retry may succeed).
func (r *Registry) Check(devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	specErr := r.refresh()
	var unknown []string
	for _, d := range devices {
		if r.cache.GetDevice(d) == nil {
			unknown = append(unknown, d)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	msg := fmt.Sprintf("unknown CDI device(s) %s: no spec in %s defines them", strings.Join(unknown, ", "),
		strings.Join(r.dirs, ", "))
	if specErr != nil {
		msg += fmt.Sprintf(" (spec files that did not load: %v)", specErr)
	}
	return errdefs.FailedPrecondition("%s", msg)
}

// Inject applies the edits of devices (and of their spec files) to spec. Unknown devices are FailedPrecondition,
// as in Check.
func (r *Registry) Inject(spec *specs.Spec, devices []string) error {
	if len(devices) == 0 {
		return nil
	}
	if err := r.Check(devices); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if unresolved, err := r.cache.InjectDevices(spec, devices...); err != nil {
		if len(unresolved) > 0 {
			return errdefs.FailedPrecondition("unknown CDI device(s) %s", strings.Join(unresolved, ", "))
		}
		return errdefs.FailedPrecondition("inject CDI devices %s: %v", strings.Join(devices, ", "), err)
	}
	return nil
}
