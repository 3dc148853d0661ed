package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/noded/noded/config"
	"github.com/noded/noded/version"
)

// probeTimeout bounds each --version probe of a helper binary.
const probeTimeout = 5 * time.Second

// printVersion writes noded's version and commit, then the versions of the helpers the configuration at
// cfgPath names: each OCI runtime handler, conmon and the CNI plugins in the plugin dirs. A config that does not
// load is reported and the defaults are probed instead.
func printVersion(w io.Writer, cfgPath string) {
	fmt.Fprintf(w, "noded %s\ncommit: %s\ngo: %s\n", version.Version, version.Commit(), runtime.Version())
	cfg, err := config.Load(cfgPath)
	if err != nil {
		fmt.Fprintf(w, "config: %v (showing the defaults' helpers)\n", err)
		cfg = config.Default()
	}
	ctx := context.Background()
	names := make([]string, 0, len(cfg.Runtimes))
	for name := range cfg.Runtimes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		def := ""
		if name == cfg.DefaultRuntime {
			def = " (default)"
		}
		fmt.Fprintf(w, "runtime %s%s: %s\n", name, def, probe(ctx, cfg.Runtimes[name].Path, nil, "--version"))
	}
	fmt.Fprintf(w, "conmon: %s\n", probe(ctx, cfg.Conmon, nil, "--version"))
	for _, dir := range cfg.CNI.BinDirs {
		fmt.Fprintf(w, "cni plugins %s: %s\n", dir, cniPlugins(ctx, dir))
	}
}

// probe runs a helper binary with args and returns "path: first line of its output", or why it could not.
func probe(ctx context.Context, name string, env []string, args ...string) string {
	path, err := exec.LookPath(name)
	if err != nil {
		return name + ": not found"
	}
	out, err := runProbe(ctx, path, env, args...)
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	if err != nil && first == "" {
		return fmt.Sprintf("%s: %v", path, err)
	}
	if first == "" {
		first = "no version output"
	}
	if spec := specLine(out); spec != "" {
		first += " (" + spec + ")"
	}
	return path + ": " + first
}

func runProbe(ctx context.Context, path string, env []string, args ...string) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, path, args...)
	cmd.Env = env
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	return b.String(), err
}

// specLine returns the "spec: X" line of runc/crun --version output, as "spec X".
func specLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "spec:"); ok {
			return "spec " + strings.TrimSpace(v)
		}
	}
	return ""
}

// cniPlugins lists the plugins in dir grouped by the version they report. A CNI plugin run without CNI_COMMAND
// prints "CNI <name> plugin <version>" and its supported protocol versions.
func cniPlugins(ctx context.Context, dir string) string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return "directory not found"
		}
		return err.Error()
	}
	byVersion := map[string][]string{}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if fi, err := os.Stat(path); err != nil || fi.Mode()&0o111 == 0 {
			continue
		}
		out, _ := runProbe(ctx, path, []string{})
		v := "version unknown"
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "CNI ") && strings.Contains(l, " plugin ") {
				_, after, _ := strings.Cut(l, " plugin ")
				v = strings.TrimSpace(after)
				break
			}
		}
		if p := protocolLine(out); p != "" {
			v += "; protocol " + p
		}
		byVersion[v] = append(byVersion[v], e.Name())
	}
	if len(byVersion) == 0 {
		return "none"
	}
	versions := make([]string, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	sort.Strings(versions)
	parts := make([]string, 0, len(versions))
	for _, v := range versions {
		parts = append(parts, fmt.Sprintf("%s (%s)", strings.Join(byVersion[v], " "), v))
	}
	return strings.Join(parts, "; ")
}

// protocolLine returns the supported CNI protocol versions a plugin lists, as "first..last".
func protocolLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if _, v, ok := strings.Cut(l, "versions supported:"); ok {
			vs := strings.Split(v, ",")
			first, last := strings.TrimSpace(vs[0]), strings.TrimSpace(vs[len(vs)-1])
			if first == last {
				return first
			}
			return first + ".." + last
		}
	}
	return ""
}
