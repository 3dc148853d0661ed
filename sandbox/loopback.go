package sandbox

import (
	"fmt"

	"github.com/vishvananda/netlink"

	"github.com/noded/noded/internal/nsutil"
)

// loopbackUp sets the "lo" interface up inside the network namespace at netnsPath. The sandbox does it before
// CNI ADD, so that the network plugins only see a namespace that is already usable by the pod.
func loopbackUp(netnsPath string) error {
	err := nsutil.WithNetNS(netnsPath, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("find lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loopback in %s: %w", netnsPath, err)
	}
	return nil
}
