package cni

import "time"

// Observer receives the latency and outcome of each pod network operation: "setup" (ADD) or "teardown" (DEL).
type Observer func(op string, d time.Duration, err error)

// WithObserver reports every Setup and Teardown to obs (metrics).
func WithObserver(obs Observer) Option { return func(m *Manager) { m.observe = obs } }

// observed reports an operation that started at start, if an observer is set. Use with defer.
func (m *Manager) observed(op string, start time.Time, err *error) {
	if m.observe != nil {
		m.observe(op, time.Since(start), *err)
	}
}
