package daemon

import (
	"fmt"
	"net"
	"os"
)

// takeNotifySocket returns $NOTIFY_SOCKET and removes it from the environment, as sd_notify(3)'s
// unset_environment does: runc, conmon and CNI plugins inherit noded's environment, and a runc that sees
// NOTIFY_SOCKET proxies the container's readiness to it (and fails on long paths).
func takeNotifySocket() string {
	path := os.Getenv("NOTIFY_SOCKET")
	os.Unsetenv("NOTIFY_SOCKET")
	return path
}

// sdNotify sends state (e.g. "READY=1") to the service manager's notify socket path, as sd_notify(3) does.
// With an empty path (not started by systemd, or not Type=notify) it does nothing and returns false.
func sdNotify(path, state string) (bool, error) {
	if path == "" {
		return false, nil
	}
	if path[0] != '/' && path[0] != '@' {
		return false, fmt.Errorf("NOTIFY_SOCKET %q: not a unix socket path", path)
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract namespace
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return false, fmt.Errorf("sd_notify: %w", err)
	}
	return true, nil
}
