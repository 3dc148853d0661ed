package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	"k8s.io/klog/v2"

	"github.com/noded/noded/config"
	"github.com/noded/noded/container"
	"github.com/noded/noded/features"
)

// probeHostFeatures probes, once at start, what the kernel and the snapshot filesystem (dir) can do.
func probeHostFeatures(ctx context.Context, dir string) features.Host {
	h := features.ProbeHost(ctx, features.RealProbes(), dir)
	klog.InfoS("Host features probed", "kernel", h.Kernel, "recursiveReadOnly", h.RecursiveReadOnly,
		"idmappedMounts", h.IDMappedMounts, "reasons", h.Reasons)
	return h
}

// probeHandlers asks each runtime handler's binary for its features at start (they are cached from then on) and
// logs what each handler is advertised with.
func (d *Daemon) probeHandlers(ctx context.Context, s *services) {
	for _, name := range sortedRuntimeNames(s) {
		rf, err := s.runtimes[name].Features(ctx)
		if err != nil {
			klog.ErrorS(err, "Runtime handler features unknown; advertising none", "handler", name)
			continue
		}
		hf := container.HandlerFeatures(s.hostFeatures, rf)
		klog.InfoS("Runtime handler features", "handler", name, "recursiveReadOnly", hf.RecursiveReadOnly,
			"userNamespaces", hf.UserNamespaces, "idmapMounts", hf.IDMapMounts, "reasons", hf.Reasons)
	}
}

func sortedRuntimeNames(s *services) []string {
	names := make([]string, 0, len(s.runtimes))
	for name := range s.runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// handlerFeaturesInfo is one handler's entry in Status(verbose) "features".
type handlerFeaturesInfo struct {
	RecursiveReadOnly bool              `json:"recursiveReadOnly"`
	UserNamespaces    bool              `json:"userNamespaces"`
	IDMapMounts       bool              `json:"idmapMounts"`
	Reasons           map[string]string `json:"reasons,omitempty"`
	Error             string            `json:"error,omitempty"`
}

// featuresInfo is the Status(verbose) "features" value: the host's probe and each handler's features with the
// reasons of what is off.
func (d *Daemon) featuresInfo(s *services) func(ctx context.Context) any {
	return func(ctx context.Context) any {
		handlers := map[string]handlerFeaturesInfo{}
		for _, name := range sortedRuntimeNames(s) {
			rf, err := s.runtimes[name].Features(ctx)
			if err != nil {
				handlers[name] = handlerFeaturesInfo{Error: err.Error()}
				continue
			}
			hf := container.HandlerFeatures(s.hostFeatures, rf)
			handlers[name] = handlerFeaturesInfo{RecursiveReadOnly: hf.RecursiveReadOnly, UserNamespaces: hf.UserNamespaces,
				IDMapMounts: hf.IDMapMounts, Reasons: hf.Reasons}
		}
		return map[string]any{"host": s.hostFeatures, "handlers": handlers}
	}
}

// effectiveConfigJSON is the Status(verbose) "config" value: the configuration in effect (the startup one with
// what SIGHUP reloaded) keyed as in the TOML file, registry credentials redacted, plus the command-line dirs.
func (d *Daemon) effectiveConfigJSON() ([]byte, error) {
	d.live.mu.Lock()
	cfg := d.live.applied
	d.live.mu.Unlock()
	b, err := config.RedactedJSON(cfg)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		return nil, fmt.Errorf("decode config JSON: %w", err)
	}
	tree["root"], tree["state"], tree["listen"], tree["config_path"] = d.opts.Root, d.opts.State, d.opts.Listen, d.opts.ConfigPath
	tree["cgroup_driver_in_use"] = d.driver
	return json.Marshal(tree)
}
