package ociruntime

import "time"

// Observer receives the latency and outcome of each runtime call: "create" (conmon starting `runtime create`
// until the init PID is known) and the runtime subcommands ("start", "kill", "delete", "state", "update",
// "pause", "resume", "features").
type Observer func(op string, d time.Duration, err error)

// observed reports a call that started at start to the configured observer. Use with defer.
func (r *CLI) observed(op string, start time.Time, err *error) {
	if r.cfg.Observe != nil {
		r.cfg.Observe(op, time.Since(start), *err)
	}
}
