package sandbox

import (
	"context"
	"net"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/noded/noded/internal/nsutil"
)

func TestLoopbackUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	pins, err := nsutil.Pin(context.Background(), t.TempDir(), []nsutil.Type{nsutil.Net})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nsutil.UnpinAll(pins) })
	loUp := func() bool {
		up := false
		if err := nsutil.WithNetNS(pins[nsutil.Net], func() error {
			lo, err := netlink.LinkByName("lo")
			if err == nil {
				up = lo.Attrs().Flags&net.FlagUp != 0
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return up
	}
	if loUp() {
		t.Fatal("lo up in a fresh netns")
	}
	if err := loopbackUp(pins[nsutil.Net]); err != nil {
		t.Fatal(err)
	}
	if !loUp() {
		t.Error("lo still down")
	}
	if err := loopbackUp("/nonexistent/netns"); err == nil {
		t.Error("loopbackUp on a missing netns succeeded")
	}
}
