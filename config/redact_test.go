package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedactedJSONHidesCredentials(t *testing.T) {
	c, err := Parse([]byte(`
default_runtime = "runc"
[registry.hosts."registry.example.com"]
mirrors = [{url = "https://mirror.example.com"}]
[registry.hosts."registry.example.com".auth]
username = "robot"
password = "hunter2-secret"
[registry.hosts."quay.example.com".auth]
identity_token = "id-token-secret"
registry_token = "reg-token-secret"
`))
	if err != nil {
		t.Fatal(err)
	}
	b, err := RedactedJSON(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"hunter2-secret", "id-token-secret", "reg-token-secret", "robot"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("config JSON contains %q: %s", secret, b)
		}
	}
	var tree map[string]any
	if err := json.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	hosts := tree["registry"].(map[string]any)["hosts"].(map[string]any)
	auth := hosts["registry.example.com"].(map[string]any)["auth"].(map[string]any)
	if auth["password"] != Redacted || auth["username"] != Redacted {
		t.Errorf("auth = %v, want redacted values", auth)
	}
	quay := hosts["quay.example.com"].(map[string]any)["auth"].(map[string]any)
	if quay["identity_token"] != Redacted || quay["password"] != "" {
		t.Errorf("quay auth = %v, want the token redacted and the empty password left empty", quay)
	}
	if tree["default_runtime"] != "runc" || !strings.Contains(string(b), "mirror.example.com") {
		t.Errorf("the rest of the config is missing: %s", b)
	}
	if _, ok := tree["cgroup_driver"]; !ok {
		t.Errorf("defaults missing from the effective config: %s", b)
	}
}
