package config

import (
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated block of docs/configuration.md")

const (
	docsPath   = "../docs/configuration.md"
	docsBegin  = "<!-- BEGIN generated: noded config default -->\n```toml\n"
	docsEnd    = "```\n<!-- END generated -->"
	docsUpdate = "go test ./config -run TestConfigurationDocs -update-docs"
)

// TestConfigurationDocs keeps docs/configuration.md in step with the code: its generated block is exactly what
// `noded config default` prints, and its reference table names every key.
func TestConfigurationDocs(t *testing.T) {
	data, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	i, j := strings.Index(doc, docsBegin), strings.Index(doc, docsEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated block markers", docsPath)
	}
	want := doc[:i+len(docsBegin)] + string(DefaultTOML()) + doc[j:]
	if want != doc {
		if *updateDocs {
			if err := os.WriteFile(docsPath, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			doc = want
		} else {
			t.Errorf("%s: the generated block differs from `noded config default`; run %s", docsPath, docsUpdate)
		}
	}

	// Every key, with one runtime, one registry host and its credentials set so their keys exist.
	sample, err := Parse([]byte(`[registry.hosts."example.com"]
mirrors = [{ url = "https://m.example.com" }]
[registry.hosts."example.com".auth]
username = "u"
`))
	if err != nil {
		t.Fatal(err)
	}
	flat, err := flatten(sample)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range flat {
		keys = append(keys, k)
	}
	runtimeKey := regexp.MustCompile(`^runtimes\.[^.]+\.`)
	hostKey := regexp.MustCompile(`^registry\.hosts\."[^"]+"\.`)
	seen := map[string]bool{}
	for _, k := range keys {
		k = runtimeKey.ReplaceAllString(k, "runtimes.NAME.")
		k = hostKey.ReplaceAllString(k, "registry.hosts.HOST.")
		if seen[k] {
			continue
		}
		seen[k] = true
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("%s: the reference table has no row for `%s`", docsPath, k)
		}
	}
	if len(seen) < 20 {
		t.Fatalf("only %d keys found: %v", len(seen), keys)
	}
}
