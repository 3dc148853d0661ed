package stats

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/noded/noded/internal/nsutil"
)

// DefaultInterface is the pod interface reported as the default one (the name CNI plugins give it).
const DefaultInterface = "eth0"

// NetDev is the cumulative counters of one network interface.
type NetDev struct {
	Name                                    string
	RxBytes, RxPackets, RxErrors, RxDropped uint64
	TxBytes, TxPackets, TxErrors, TxDropped uint64
}

// ReadNetDev reads the interface counters of the network namespace pinned at nsPath, from a thread that joins it
// (/proc/thread-self/net follows the reading thread's namespace, /proc/self/net would not).
func ReadNetDev(nsPath string) ([]NetDev, error) {
	var data []byte
	err := nsutil.WithNetNS(nsPath, func() error {
		var err error
		data, err = os.ReadFile("/proc/thread-self/net/dev")
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read network counters of %s: %w", nsPath, err)
	}
	return ParseNetDev(string(data))
}

// ParseNetDev parses the /proc/net/dev format: two header lines, then "name: rx(8 fields) tx(8 fields)".
func ParseNetDev(data string) ([]NetDev, error) {
	var out []NetDev
	lines := strings.Split(data, "\n")
	for i, line := range lines {
		if i < 2 || strings.TrimSpace(line) == "" {
			continue
		}
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("parse net/dev line %q: no interface name", line)
		}
		f := strings.Fields(rest)
		if len(f) < 16 {
			return nil, fmt.Errorf("parse net/dev line %q: %d fields, want 16", line, len(f))
		}
		var v [16]uint64
		for j := range v {
			n, err := strconv.ParseUint(f[j], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("parse net/dev line %q: %w", line, err)
			}
			v[j] = n
		}
		out = append(out, NetDev{
			Name:    strings.TrimSpace(name),
			RxBytes: v[0], RxPackets: v[1], RxErrors: v[2], RxDropped: v[3],
			TxBytes: v[8], TxPackets: v[9], TxErrors: v[10], TxDropped: v[11],
		})
	}
	return out, nil
}
