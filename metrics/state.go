package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Counts reports how many pod sandboxes and containers are in each state. It is called at every scrape, so it
// must be cheap (the store's in-memory index) and safe for concurrent use.
type Counts func() (pods, containers map[string]int)

// stateCollector exposes Counts as gauges. States listed as known are always exported (as 0 when empty), so
// a series does not vanish when its last object leaves the state.
type stateCollector struct {
	counts                     Counts
	knownPods, knownContainers []string
	pods, containers           *prometheus.Desc
}

// RegisterStateCounts adds the gauges noded_pods{state} and noded_containers{state}, read from counts at
// scrape time. podStates and containerStates are the states always exported.
func (m *Metrics) RegisterStateCounts(counts Counts, podStates, containerStates []string) error {
	if m == nil {
		return nil
	}
	return m.reg.Register(&stateCollector{
		counts: counts, knownPods: podStates, knownContainers: containerStates,
		pods: prometheus.NewDesc(namespace+"_pods", "Pod sandboxes known to noded, by state.",
			[]string{"state"}, nil),
		containers: prometheus.NewDesc(namespace+"_containers", "Containers known to noded, by state.",
			[]string{"state"}, nil),
	})
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pods
	ch <- c.containers
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	pods, containers := c.counts()
	emit := func(desc *prometheus.Desc, known []string, got map[string]int) {
		seen := make(map[string]bool, len(known))
		for _, s := range known {
			seen[s] = true
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(got[s]), s)
		}
		for s, n := range got {
			if !seen[s] {
				ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, float64(n), s)
			}
		}
	}
	emit(c.pods, c.knownPods, pods)
	emit(c.containers, c.knownContainers, containers)
}
