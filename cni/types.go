package cni

import (
	"encoding/json"

	"github.com/noded/noded/errdefs"
)

// PodNetwork describes one pod's attachment request. ID, Name, Namespace and NetNS are required for Setup.
type PodNetwork struct {
	ID        string // sandbox ID, used as the CNI container ID
	Name      string // pod name (K8S_POD_NAME)
	Namespace string // pod namespace (K8S_POD_NAMESPACE)
	UID       string // pod UID (K8S_POD_UID)
	NetNS     string // path of the pinned network namespace

	PortMappings []PortMapping // hostPort mappings, passed as the "portMappings" capability
	Bandwidth    *Bandwidth    // traffic shaping, passed as the "bandwidth" capability (see ParseBandwidth)
	DNS          *DNS          // pod DNS settings, passed as the "dns" capability
	IPs          []string      // requested static IPs (with or without prefix), the "ips" capability
	IPRanges     []IPRange     // ranges to allocate from (e.g. the node's pod CIDR), the "ipRanges" capability
}

// PortMapping is one hostPort mapping, in the form of the "portMappings" capability: HostPort 1-65535, Protocol
// "tcp", "udp" or "sctp". Setup validates it and passes it on unchanged.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth holds rates in bits per second; 0 means unlimited in that direction.
type Bandwidth struct {
	IngressRate uint64
	EgressRate  uint64
}

// DNS is the pod's DNS configuration as passed to plugins.
type DNS struct {
	Servers  []string `json:"servers,omitempty"`
	Searches []string `json:"searches,omitempty"`
	Options  []string `json:"options,omitempty"`
}

// IPRange is one host-local style allocation range.
type IPRange struct {
	Subnet     string `json:"subnet"`
	RangeStart string `json:"rangeStart,omitempty"`
	RangeEnd   string `json:"rangeEnd,omitempty"`
	Gateway    string `json:"gateway,omitempty"`
}

// Result is the outcome of Setup.
type Result struct {
	Network   string          // name of the CNI network (conflist "name")
	Interface string          // pod-side interface name, e.g. eth0
	IPs       []string        // pod IPs without prefix, IPv4 before IPv6; IPs[0] is the primary IP
	Raw       json.RawMessage // the plugin chain's result as JSON; store it with the sandbox for Teardown
}

// Attachment identifies one live pod attachment for GC.
type Attachment struct {
	ContainerID string
	IfName      string // empty means the Manager's interface name
}

func (p *PodNetwork) validate(needNetNS bool) error {
	switch {
	case p.ID == "":
		return errdefs.InvalidArgument("pod network: empty sandbox ID")
	case needNetNS && p.NetNS == "":
		return errdefs.InvalidArgument("pod network %s: empty network namespace path", p.ID)
	}
	for _, pm := range p.PortMappings {
		if pm.ContainerPort <= 0 || pm.ContainerPort > 65535 || pm.HostPort <= 0 || pm.HostPort > 65535 {
			return errdefs.InvalidArgument("pod network %s: invalid port mapping %d->%d", p.ID, pm.HostPort, pm.ContainerPort)
		}
		switch pm.Protocol {
		case "tcp", "udp", "sctp":
		default:
			return errdefs.InvalidArgument("pod network %s: invalid protocol %q", p.ID, pm.Protocol)
		}
	}
	return nil
}
