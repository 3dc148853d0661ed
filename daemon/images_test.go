package daemon

import (
	"testing"

	"github.com/noded/noded/config"
)

func TestRegistryConfigMapsHostFlags(t *testing.T) {
	rc := registryConfig(config.Registry{Hosts: map[string]config.RegistryHost{
		"insecure.local:5000": {PlainHTTP: true},
		"selfsigned.local":    {SkipVerify: true, Mirrors: []config.Mirror{{URL: "https://m.local", SkipVerify: true}}},
		"docker.io":           {Mirrors: []config.Mirror{{URL: "http://127.0.0.1:5000"}}, MirrorsOnly: true},
	}})
	if h := rc.Hosts["insecure.local:5000"]; !h.PlainHTTP || h.SkipVerify {
		t.Errorf("insecure.local:5000 = %+v", h)
	}
	if h := rc.Hosts["selfsigned.local"]; !h.SkipVerify || h.PlainHTTP || len(h.Mirrors) != 1 || !h.Mirrors[0].SkipVerify {
		t.Errorf("selfsigned.local = %+v", h)
	}
	if h := rc.Hosts["docker.io"]; h.PlainHTTP || h.SkipVerify || !h.MirrorsOnly || len(h.Mirrors) != 1 {
		t.Errorf("docker.io = %+v", h)
	}
}
