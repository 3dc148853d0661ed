package cri

import (
	"net/netip"
	"strings"

	"github.com/noded/noded/errdefs"
)

func validateCIDRs(s string) error {
	for _, c := range strings.Split(s, ",") {
		if _, err := netip.ParsePrefix(strings.TrimSpace(c)); err != nil {
			return errdefs.InvalidArgument("pod CIDR %q is not a CIDR: %v", c, err)
		}
	}
	return nil
}
