package daemon

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"k8s.io/klog/v2"

	"github.com/noded/noded/config"
	"github.com/noded/noded/image"
)

// reloadable are the config keys (tables or keys, as config.Diff names them) a SIGHUP applies live.
var reloadable = []string{"registry.hosts", "log_level"}

// liveConfig is what Reload needs: the configuration now in effect and the services it changes.
type liveConfig struct {
	mu      sync.Mutex
	applied config.Config  // the config in effect: the startup one with reloaded parts replaced
	images  *image.Service // nil until Run has assembled the services
}

// SetVerbosity sets klog's -v level for the whole process.
func SetVerbosity(level int) error {
	var l klog.Level
	return l.Set(strconv.Itoa(level))
}

// Reload re-reads the configuration (on SIGHUP) and applies what can change without a restart: registry mirrors
// and credentials (for pulls that start afterwards) and the log level. Every other changed key is logged by name
// as not applied. A configuration that does not load is reported and the current one kept. It is safe to call
// at any time, also before Run has started serving.
func (d *Daemon) Reload() error {
	d.live.mu.Lock()
	defer d.live.mu.Unlock()
	next, err := config.Load(d.opts.ConfigPath)
	if err != nil {
		klog.ErrorS(err, "Configuration reload failed, keeping the current configuration", "config", d.opts.ConfigPath)
		return err
	}
	changed, err := config.Diff(d.live.applied, next)
	if err != nil {
		return err
	}
	var applied, skipped []string
	for _, key := range changed {
		if isReloadable(key) {
			applied = append(applied, key)
		} else {
			skipped = append(skipped, key)
		}
	}
	if len(applied) > 0 {
		if d.live.images != nil {
			if err := d.live.images.SetRegistryConfig(registryConfig(next.Registry)); err != nil {
				klog.ErrorS(err, "Configuration reload failed, keeping the current configuration", "config", d.opts.ConfigPath)
				return fmt.Errorf("registry configuration: %w", err)
			}
		}
		if next.LogLevel != d.live.applied.LogLevel {
			if err := SetVerbosity(next.LogLevel); err != nil {
				return err
			}
		}
		d.live.applied.Registry.Hosts = next.Registry.Hosts
		d.live.applied.LogLevel = next.LogLevel
	}
	if len(skipped) > 0 {
		klog.InfoS("Configuration reload: changed keys need a restart and were not applied",
			"config", d.opts.ConfigPath, "keys", strings.Join(skipped, ", "))
	}
	klog.InfoS("Configuration reloaded", "config", d.opts.ConfigPath, "applied", strings.Join(applied, ", "),
		"notApplied", len(skipped))
	return nil
}

func isReloadable(key string) bool {
	for _, t := range reloadable {
		if config.KeyUnder(key, t) {
			return true
		}
	}
	return false
}
