package testimage

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The builder takes the agnhost and glibc images' tools out of Debian packages and resolves their libraries with
// ldd on the host, so hack/install-deps.sh must install every package it takes a binary from: a package update
// that links a new library (bind9-dnsutils and libjemalloc2) otherwise breaks the image build on a fresh machine.
func TestInstallDepsHasTheImagesPackages(t *testing.T) {
	b, err := os.ReadFile("../../hack/install-deps.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\nPKGS=\((.*?)\n\)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no PKGS=( ... ) list in hack/install-deps.sh")
	}
	installed := map[string]bool{}
	for _, line := range strings.Split(string(m[1]), "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.Fields(line) {
			installed[f] = true
		}
	}
	tools := append([]agnhostTool{{pkg: "hostname"}}, agnhostTools...)
	for _, tool := range tools {
		if !installed[tool.pkg] {
			t.Errorf("hack/install-deps.sh does not install %s, which the test images take %s from", tool.pkg, tool.path)
		}
	}
}
