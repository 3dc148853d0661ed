package layering

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/noded/noded"

// graph maps a package (path relative to the module, "." for the root) to the module packages its non-test files
// import (relative too). Imports from outside the module are dropped: they are leaves.
type graph map[string][]string

// within reports whether pkg is p or below it.
func within(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+"/") }

func withinAny(pkg string, ps ...string) bool {
	for _, p := range ps {
		if within(pkg, p) {
			return true
		}
	}
	return false
}

// rules returns the layering violations of g, one line each, sorted.
func rules(g graph) []string {
	var bad []string
	add := func(from, to, why string) { bad = append(bad, from+" imports "+to+": "+why) }
	for from, imps := range g {
		for _, to := range imps {
			// The top of the stack: cmd starts daemon, daemon wires cri; nothing else reaches up.
			switch {
			case within(to, "cmd") && !within(from, "cmd"):
				add(from, to, "nothing imports cmd")
			case within(to, "daemon") && !withinAny(from, "daemon", "cmd"):
				add(from, to, "only cmd imports daemon")
			case within(to, "cri") && !withinAny(from, "cri", "daemon"):
				add(from, to, "only daemon imports cri")
			}
			// Wrappers of external systems stand alone.
			for _, leaf := range []string{"cni", "cgroupsv2"} {
				if within(from, leaf) && !within(to, leaf) && to != "errdefs" {
					add(from, to, leaf+" imports only errdefs and packages outside the module")
				}
			}
			if within(from, "snapshotter") && within(to, "image") {
				add(from, to, "snapshotter never imports image")
			}
			// The integration framework writes the config file of the noded it runs, as an operator would.
			if within(to, "config") && !withinAny(from, "config", "daemon", "cmd", "integration") {
				add(from, to, "only daemon, cmd and the integration harness import config")
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// load parses the imports of every non-test .go file of the module rooted at root.
func load(t *testing.T, root string) graph {
	t.Helper()
	g := graph{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		pkg := filepath.ToSlash(rel)
		if _, ok := g[pkg]; !ok {
			g[pkg] = nil
		}
		for _, imp := range f.Imports {
			p, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if p == module || strings.HasPrefix(p, module+"/") {
				g[pkg] = append(g[pkg], strings.TrimPrefix(strings.TrimPrefix(p, module), "/"))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestImportRules(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !strings.Contains(string(b), "module "+module+"\n") {
		t.Fatalf("module root %s: %v", root, err)
	}
	g := load(t, root)
	for _, must := range []string{"cri", "daemon", "cni", "cgroupsv2", "snapshotter", "config", "cmd/noded"} {
		if _, ok := g[must]; !ok {
			t.Fatalf("package %s not found: the walk is broken", must)
		}
	}
	for _, v := range rules(g) {
		t.Error(v)
	}
}

// TestRulesCatchViolations holds the checker to each rule, so that TestImportRules cannot pass by checking nothing.
func TestRulesCatchViolations(t *testing.T) {
	for _, tc := range []struct{ from, to string }{
		{"sandbox", "cri"},
		{"cri", "daemon"},
		{"daemon", "cmd/noded"},
		{"cni", "sandbox"},
		{"cni", "internal/nsutil"},
		{"cgroupsv2/stats", "store"},
		{"snapshotter/overlay", "image"},
		{"container", "config"},
	} {
		if got := rules(graph{tc.from: {tc.to}}); len(got) != 1 {
			t.Errorf("%s → %s: violations %q, want one", tc.from, tc.to, got)
		}
	}
	for _, tc := range []struct{ from, to string }{
		{"daemon", "cri"},
		{"cmd/noded", "daemon"},
		{"cmd/noded", "config"},
		{"integration/framework", "config"},
		{"cni", "errdefs"},
		{"cgroupsv2", "cgroupsv2/stats"},
		{"snapshotter/overlay", "snapshotter"},
		{"image", "snapshotter"},
	} {
		if got := rules(graph{tc.from: {tc.to}}); len(got) != 0 {
			t.Errorf("%s → %s: violations %q, want none", tc.from, tc.to, got)
		}
	}
}
