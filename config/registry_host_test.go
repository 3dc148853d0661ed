package config

import "testing"

func TestRegistryHostPlainHTTPAndSkipVerify(t *testing.T) {
	doc := `
[registry.hosts."127.0.0.1:5000"]
plain_http = true
[registry.hosts."registry.internal"]
skip_verify = true
mirrors = [{ url = "https://mirror.internal", skip_verify = true }]
[registry.hosts."docker.io"]
mirrors = [{ url = "http://127.0.0.1:5000" }]
`
	cfg, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Registry.Hosts
	if !h["127.0.0.1:5000"].PlainHTTP || h["127.0.0.1:5000"].SkipVerify {
		t.Errorf("127.0.0.1:5000 = %+v, want plain_http only", h["127.0.0.1:5000"])
	}
	if ri := h["registry.internal"]; !ri.SkipVerify || ri.PlainHTTP || len(ri.Mirrors) != 1 || !ri.Mirrors[0].SkipVerify {
		t.Errorf("registry.internal = %+v, want skip_verify on the host and its mirror", ri)
	}
	// A plain-HTTP mirror does not make the host itself plain HTTP.
	if d := h["docker.io"]; d.PlainHTTP || d.SkipVerify {
		t.Errorf("docker.io = %+v, want neither flag", d)
	}
	if _, err := Parse([]byte("[registry.hosts.\"x\"]\nplain_http = \"yes\"\n")); err == nil {
		t.Error("plain_http = \"yes\" accepted")
	}
}
