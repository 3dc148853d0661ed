package config

import (
	"reflect"
	"testing"
)

func TestDiffNamesChangedKeys(t *testing.T) {
	a := Default()
	same, err := Diff(a, Default())
	if err != nil || len(same) != 0 {
		t.Fatalf("Diff of equal configs = %v, %v", same, err)
	}
	b, err := Parse([]byte(`
max_concurrent_pod_starts = 8
log_level = 3
[runtimes.runc]
path = "/usr/local/sbin/runc"
[registry]
stall_timeout = "30s"
[registry.hosts."docker.io"]
mirrors = [{ url = "http://127.0.0.1:5000" }]
[registry.hosts."docker.io".auth]
username = "u"
[metrics]
address = "127.0.0.1:9100"
`))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Diff(a, b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"log_level", "max_concurrent_pod_starts", "metrics.address",
		`registry.hosts."docker.io".auth.identity_token`, `registry.hosts."docker.io".auth.password`,
		`registry.hosts."docker.io".auth.registry_token`, `registry.hosts."docker.io".auth.username`,
		`registry.hosts."docker.io".mirrors`,
		`registry.hosts."docker.io".mirrors_only`, `registry.hosts."docker.io".plain_http`,
		`registry.hosts."docker.io".skip_verify`, "registry.stall_timeout", "runtimes.runc.path",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Diff =\n %q\nwant\n %q", got, want)
	}
	// Symmetric: removing is a change too.
	back, _ := Diff(b, a)
	if !reflect.DeepEqual(back, want) {
		t.Fatalf("reverse Diff = %q", back)
	}
}

func TestKeyUnder(t *testing.T) {
	for _, c := range []struct {
		key, table string
		want       bool
	}{
		{`registry.hosts."docker.io".mirrors`, "registry.hosts", true},
		{"registry.hosts", "registry.hosts", true},
		{"registry.hostsx", "registry.hosts", false},
		{"registry.stall_timeout", "registry.hosts", false},
	} {
		if got := KeyUnder(c.key, c.table); got != c.want {
			t.Errorf("KeyUnder(%q, %q) = %v", c.key, c.table, got)
		}
	}
}
