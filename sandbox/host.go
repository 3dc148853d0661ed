package sandbox

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/noded/noded/cni"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/sandbox/podfiles"
)

// Host is what a sandbox changes on the node besides files: namespace pins, the pod's /dev/shm mount, and the
// links inside its network namespace. RealHost does it to the kernel; unit tests give a fake.
type Host interface {
	// PrepareRoot makes dir a place where namespaces can be pinned.
	PrepareRoot(dir string) error
	// Pin creates namespaces of the given types pinned under dir (in a new user namespace when uids is set).
	Pin(ctx context.Context, dir string, types []nsutil.Type, uids, gids []nsutil.IDMap) (map[nsutil.Type]string, error)
	// Unpin releases one pin; a path never pinned is not an error.
	Unpin(path string) error
	// IsPinned reports whether path is a pinned namespace.
	IsPinned(path string) bool
	// SetHostname sets the hostname in the UTS namespace pinned at uts.
	SetHostname(uts, hostname string) error
	// ApplySysctls checks and sets namespaced sysctls in the pinned namespaces.
	ApplySysctls(pins map[nsutil.Type]string, sysctls map[string]string) error
	// MountShm mounts a tmpfs of size bytes at dir; UnmountShm undoes it (not mounted is not an error).
	MountShm(dir string, size int64) error
	UnmountShm(dir string) error
	// LoopbackUp sets "lo" up in the network namespace at netns.
	LoopbackUp(netns string) error
	// StandInNetNS pins a network namespace under dir holding an interface cni.DefaultInterface with addrs.
	StandInNetNS(ctx context.Context, dir string, addrs []*net.IPNet) (path string, cleanup func(), err error)
}

// RealHost is the Host of a running node.
type RealHost struct{}

var _ Host = RealHost{}

func (RealHost) PrepareRoot(dir string) error { return nsutil.PrepareRoot(dir) }

func (RealHost) Pin(ctx context.Context, dir string, types []nsutil.Type, uids, gids []nsutil.IDMap) (map[nsutil.Type]string, error) {
	if uids != nil {
		return nsutil.PinUserns(ctx, dir, types, uids, gids)
	}
	return nsutil.Pin(ctx, dir, types)
}

func (RealHost) Unpin(path string) error { return nsutil.Unpin(path) }

// IsPinned reports whether path is an nsfs bind mount.
func (RealHost) IsPinned(path string) bool {
	var st unix.Statfs_t
	return unix.Statfs(path, &st) == nil && st.Type == unix.NSFS_MAGIC
}

func (RealHost) SetHostname(uts, hostname string) error { return nsutil.SetHostname(uts, hostname) }

func (RealHost) ApplySysctls(pins map[nsutil.Type]string, sysctls map[string]string) error {
	if err := nsutil.ValidateSysctls(pins, sysctls); err != nil {
		return err
	}
	return nsutil.ApplySysctls(pins, sysctls)
}

func (RealHost) MountShm(dir string, size int64) error { return podfiles.MountShm(dir, size) }
func (RealHost) UnmountShm(dir string) error           { return podfiles.UnmountShm(dir) }
func (RealHost) LoopbackUp(netns string) error         { return loopbackUp(netns) }

func (RealHost) StandInNetNS(ctx context.Context, dir string, addrs []*net.IPNet) (path string, cleanup func(), err error) {
	pins, err := nsutil.Pin(ctx, dir, []nsutil.Type{nsutil.Net})
	if err != nil {
		return "", nil, fmt.Errorf("stand-in network namespace: %w", err)
	}
	path = pins[nsutil.Net]
	cleanup = func() {
		_ = nsutil.Unpin(path)
		_ = os.RemoveAll(dir)
	}
	err = nsutil.WithNetNS(path, func() error {
		// A veth pair with both ends in the stand-in: the one link type every CNI host has (dummy may be absent).
		link := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: cni.DefaultInterface}, PeerName: "standin0"}
		if err := netlink.LinkAdd(link); err != nil {
			return err
		}
		for _, a := range addrs {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: a}); err != nil {
				return err
			}
		}
		return netlink.LinkSetUp(link)
	})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("stand-in network namespace: %w", err)
	}
	return path, cleanup, nil
}
