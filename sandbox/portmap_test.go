package sandbox

import (
	"reflect"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/cni"
)

func TestPortMappings(t *testing.T) {
	got := portMappings([]*runtimeapi.PortMapping{
		{ContainerPort: 80, HostPort: 8080, HostIp: "127.0.0.1"}, // protocol TCP, the zero value
		{ContainerPort: 53, HostPort: 5353, Protocol: runtimeapi.Protocol_UDP},
		{ContainerPort: 9, HostPort: 9000, Protocol: runtimeapi.Protocol_SCTP},
		{ContainerPort: 90}, // not published on the host
		{ContainerPort: 91, HostPort: -1},
	})
	want := []cni.PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"},
		{HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostPort: 9000, ContainerPort: 9, Protocol: "sctp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("portMappings =\n%+v\nwant\n%+v", got, want)
	}
	if got := portMappings(nil); got != nil {
		t.Errorf("no mappings → %+v, want nil", got)
	}
}
