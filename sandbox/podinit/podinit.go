// Package podinit is the init process of pods that share one PID namespace: it holds the namespace, reaps the
// zombies its members leave (orphans are re-parented to it) and exits on SIGTERM. It runs from the noded binary
// itself ("noded pod-init"), so no image is pulled for it.
package podinit

import (
	"os"
	"os/signal"

	"golang.org/x/sys/unix"
)

// Command is the noded subcommand that runs the pod init.
const Command = "pod-init"

// Run reaps children until SIGTERM or SIGINT, then returns 0.
func Run() int {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT)
	for sig := range sigs {
		if sig != unix.SIGCHLD {
			return 0
		}
		reap()
	}
	return 0
}

func reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
