package sandbox

import (
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/internal/nsutil"
	"github.com/noded/noded/store"
)

func seedSandboxConfigs(f *testing.F) {
	for _, cfg := range []*runtimeapi.PodSandboxConfig{
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "a", Namespace: "ns", Uid: "u"}},
		{
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "default", Uid: "1234", Attempt: 2},
			Hostname: "web-0.example", LogDirectory: "/var/log/pods/x",
			DnsConfig:    &runtimeapi.DNSConfig{Servers: []string{"10.0.0.10"}, Searches: []string{"svc.cluster.local"}, Options: []string{"ndots:5"}},
			PortMappings: []*runtimeapi.PortMapping{{ContainerPort: 80, HostPort: 8080}},
			Annotations:  map[string]string{"kubernetes.io/ingress-bandwidth": "1M"},
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				CgroupParent: "/kubepods/pod1",
				Sysctls:      map[string]string{"net.ipv4.ip_forward": "1", "kernel.shmmax": "100"},
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
					Pid: runtimeapi.NamespaceMode_POD,
					UsernsOptions: &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD,
						Uids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}},
						Gids: []*runtimeapi.IDMapping{{HostId: 65536, ContainerId: 0, Length: 65536}}},
				}},
			},
		},
		{Metadata: &runtimeapi.PodSandboxMetadata{Name: "..", Namespace: "ns/x", Uid: "u"}, LogDirectory: "rel"},
	} {
		b, err := proto.Marshal(cfg)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "")
	}
}

// FuzzValidateSandboxConfig: RunPodSandbox's validation gives nil or an InvalidArgument for any request, never
// a panic; what it accepts is safe to use in paths (names without / or NUL, absolute log dir, no .. in the
// cgroup parent, only namespaced sysctls).
func FuzzValidateSandboxConfig(f *testing.F) {
	seedSandboxConfigs(f)
	m := &Manager{cfg: Config{ValidHandler: func(h string) bool { return h == "" || h == "runc" }}}
	f.Fuzz(func(t *testing.T, data []byte, handler string) {
		cfg := &runtimeapi.PodSandboxConfig{}
		if err := proto.Unmarshal(data, cfg); err != nil {
			return
		}
		err := m.validate(cfg, handler)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("validation error of kind other than InvalidArgument: %v", err)
			}
			return
		}
		md := cfg.GetMetadata()
		for _, s := range []string{md.GetName(), md.GetNamespace(), md.GetUid()} {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
				t.Fatalf("accepted metadata %q", s)
			}
		}
		if d := cfg.GetLogDirectory(); d != "" && !filepath.IsAbs(d) {
			t.Fatalf("accepted relative log directory %q", d)
		}
		if strings.Contains(cfg.GetLinux().GetCgroupParent(), "..") {
			t.Fatalf("accepted cgroup parent %q", cfg.GetLinux().GetCgroupParent())
		}
		for k := range cfg.GetLinux().GetSysctls() {
			if _, err := nsutil.SysctlNamespace(k); err != nil {
				t.Fatalf("accepted sysctl %q: %v", k, err)
			}
		}
		_ = UniqueName(md)
		_ = podNetwork(&store.Sandbox{Config: cfg}) // port mappings, bandwidth annotations, DNS
	})
}

// FuzzSysctl: any sysctl name maps to a namespace or an InvalidArgument, and an accepted name is a plain
// dotted or slashed key that cannot leave /proc/sys.
func FuzzSysctl(f *testing.F) {
	for _, s := range []string{"net.ipv4.ip_forward", "kernel.shmmax", "kernel.panic", "net/ipv4/conf/eth0/forwarding",
		"fs.mqueue.msg_max", "net.ipv4.conf.all..x", "../../etc/passwd", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		_, err := nsutil.SysctlNamespace(name)
		if err != nil {
			if !errdefs.IsInvalidArgument(err) {
				t.Fatalf("error of kind other than InvalidArgument: %v", err)
			}
			return
		}
		sep := "."
		if strings.Contains(name, "/") {
			sep = "/"
		}
		segs := strings.Split(name, sep)
		for _, s := range segs {
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") {
				t.Fatalf("accepted sysctl %q has segment %q", name, s)
			}
		}
		if p := filepath.Join(append([]string{"/proc/sys"}, segs...)...); !strings.HasPrefix(p, "/proc/sys/") {
			t.Fatalf("accepted sysctl %q resolves to %s", name, p)
		}
	})
}
