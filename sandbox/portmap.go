package sandbox

import (
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cni"
)

// portMappings turns the pod's CRI port mappings into the "portMappings" capability of CNI: only mappings
// published on the host (hostPort > 0), protocol in lower case ("tcp", "udp", "sctp"). This is the one place
// that normalises them; cni passes them to the plugins as given.
func portMappings(pms []*runtimeapi.PortMapping) []cni.PortMapping {
	var out []cni.PortMapping
	for _, pm := range pms {
		if pm.GetHostPort() <= 0 {
			continue // not published on the host
		}
		proto := strings.ToLower(pm.GetProtocol().String())
		if proto == "" {
			proto = "tcp"
		}
		out = append(out, cni.PortMapping{
			HostPort: pm.GetHostPort(), ContainerPort: pm.GetContainerPort(), Protocol: proto, HostIP: pm.GetHostIp(),
		})
	}
	return out
}
