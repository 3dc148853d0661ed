package daemon

import (
	"k8s.io/klog/v2"

	"github.com/noded/noded/store"
)

var (
	podStates       = []string{string(store.SandboxCreating), string(store.SandboxReady), string(store.SandboxNotReady), string(store.SandboxUnknown)}
	containerStates = []string{string(store.ContainerCreating), string(store.ContainerCreated), string(store.ContainerRunning), string(store.ContainerExited), string(store.ContainerUnknown)}
)

// serveMetrics registers the pod and container counts of the store and serves the Prometheus endpoint when
// [metrics] address is set. stop is never nil.
func (d *Daemon) serveMetrics(svc *services) (stop func(), err error) {
	counts := func() (pods, containers map[string]int) {
		pods, containers = map[string]int{}, map[string]int{}
		for _, sb := range svc.store.Sandboxes() {
			pods[string(sb.State)]++
		}
		for _, c := range svc.store.ContainerRecords("") {
			containers[string(c.State)]++
		}
		return pods, containers
	}
	if err := d.metrics.RegisterStateCounts(counts, podStates, containerStates); err != nil {
		return func() {}, err
	}
	addr := d.cfg.Metrics.Address
	if addr == "" {
		return func() {}, nil
	}
	bound, stop, err := d.metrics.Serve(addr)
	if err != nil {
		return func() {}, err
	}
	klog.InfoS("Metrics endpoint serving", "address", bound, "path", "/metrics")
	return stop, nil
}

// notifyServiceManager tells systemd (Type=notify) about a state change; outside systemd it does nothing.
func (d *Daemon) notifyServiceManager(state string) {
	if _, err := sdNotify(d.notifySocket, state); err != nil {
		klog.ErrorS(err, "Could not notify the service manager", "state", state)
	}
}
