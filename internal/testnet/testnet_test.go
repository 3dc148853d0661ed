package testnet

import "testing"

func TestSlotNames(t *testing.T) {
	t.Setenv("NODED_TEST_SLOT", "")
	if got := Bridge("nodedit", 3); got != "nodedit3" {
		t.Errorf("slot 0 bridge = %q", got)
	}
	if got := Subnet(3); got != "10.251.3.0/24" {
		t.Errorf("slot 0 subnet = %q", got)
	}
	t.Setenv("NODED_TEST_SLOT", "4")
	if got := Bridge("nodedit", 12); got != "nodedits4n12" || len(got) > 15 {
		t.Errorf("slot 4 bridge = %q", got)
	}
	if got := Subnet(12); got != "10.234.12.0/24" {
		t.Errorf("slot 4 subnet = %q", got)
	}
	t.Setenv("NODED_TEST_SLOT", "x")
	if Slot() != 0 {
		t.Error("a non-digit slot is not 0")
	}
}
