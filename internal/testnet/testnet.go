// Package testnet names the bridges and subnets that tests create, so that several test runs on one machine
// (NODED_TEST_SLOT=0..9, default 0) never share a bridge, a subnet or the iptables rules that name them.
package testnet

import (
	"fmt"
	"os"
	"strconv"
)

// Slot is the test run's slot from NODED_TEST_SLOT: 0 unless it holds a digit 1-9.
func Slot() int {
	s, err := strconv.Atoi(os.Getenv("NODED_TEST_SLOT"))
	if err != nil || s < 0 || s > 9 {
		return 0
	}
	return s
}

// Bridge is the bridge name for base (at most 8 characters) and index idx (0-99) in this run's slot; it fits
// the kernel's 15-character limit.
func Bridge(base string, idx int) string {
	if s := Slot(); s != 0 {
		return fmt.Sprintf("%ss%dn%d", base, s, idx)
	}
	return fmt.Sprintf("%s%d", base, idx)
}

// Subnet is the /24 for index idx (0-255) in this run's slot: 10.251.idx.0/24 in slot 0, 10.(230+slot).idx.0/24
// otherwise.
func Subnet(idx int) string {
	second := 251
	if s := Slot(); s != 0 {
		second = 230 + s
	}
	return fmt.Sprintf("10.%d.%d.0/24", second, idx)
}
