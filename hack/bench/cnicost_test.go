package main

import (
	"encoding/json"
	"os"
	"testing"
)

// TestRenderVariant: each variant's network list is noded's template with the placeholders filled, host-local's
// state in the given dir and ipMasq and the backends set as the variant says (unset when it names none).
func TestRenderVariant(t *testing.T) {
	template, err := os.ReadFile("../cni/10-noded.conflist")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := cniVariants("debian-masq,debian-static,new-nft", "/old", "/new")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		bin     string
		masq    bool
		backend any
	}{{"/old", true, nil}, {"/old", false, nil}, {"/new", true, "nftables"}}
	for i, v := range vs {
		out, err := renderVariant(template, v, "br0", "10.232.9.0/24", "/ipam")
		if err != nil {
			t.Fatal(err)
		}
		var list struct {
			Name    string           `json:"name"`
			Plugins []map[string]any `json:"plugins"`
		}
		if err := json.Unmarshal(out, &list); err != nil {
			t.Fatalf("%s: %v\n%s", v.name, err, out)
		}
		if v.binDir != want[i].bin || list.Name != "noded-cost-"+v.name {
			t.Errorf("%s: bin %s name %s", v.name, v.binDir, list.Name)
		}
		br, pm := list.Plugins[0], list.Plugins[1]
		ipam, _ := br["ipam"].(map[string]any)
		if br["type"] != "bridge" || br["bridge"] != "br0" || br["ipMasq"] != want[i].masq || br["ipMasqBackend"] != want[i].backend ||
			ipam["dataDir"] != "/ipam" || pm["type"] != "portmap" || pm["backend"] != want[i].backend {
			t.Errorf("%s: plugins %v", v.name, list.Plugins)
		}
		ranges, _ := json.Marshal(ipam["ranges"])
		if string(ranges) != `[[{"subnet":"10.232.9.0/24"}]]` {
			t.Errorf("%s: ranges %s", v.name, ranges)
		}
	}
	if _, err := cniVariants("new-nft", "/old", ""); err == nil {
		t.Error("a new-* variant without a plugin dir was accepted")
	}
}
