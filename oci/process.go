package oci

import (
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/noded/noded/errdefs"
	"github.com/noded/noded/oci/user"
)

// Args merges the CRI command/args with the image's entrypoint/cmd the way Kubernetes documents it: command
// replaces the entrypoint and drops the image's cmd; args replaces the cmd.
func Args(command, args []string, img ImageConfig) ([]string, error) {
	var out []string
	switch {
	case len(command) > 0:
		out = append(append(out, command...), args...)
	case len(args) > 0:
		out = append(append(out, img.Entrypoint...), args...)
	default:
		out = append(append(out, img.Entrypoint...), img.Cmd...)
	}
	if len(out) == 0 || out[0] == "" {
		return nil, errdefs.InvalidArgument("no command specified: neither the container config (command/args) nor the image (entrypoint/cmd) set one")
	}
	return out, nil
}

// mergeEnv returns base overridden by over (by key, keeping base's order and appending new keys).
func mergeEnv(base, over []string) []string {
	out := make([]string, 0, len(base)+len(over))
	index := map[string]int{}
	set := func(kv string) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			return
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	for _, kv := range base {
		set(kv)
	}
	for _, kv := range over {
		set(kv)
	}
	return out
}

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

func process(p Params, u *user.Resolved) (*specs.Process, error) {
	cfg := p.Config
	args, err := Args(cfg.GetCommand(), cfg.GetArgs(), p.Image)
	if err != nil {
		return nil, err
	}

	var criEnv []string
	for i, kv := range cfg.GetEnvs() {
		if kv.GetKey() == "" || strings.Contains(kv.GetKey(), "=") {
			return nil, errdefs.InvalidArgument("envs[%d]: invalid key %q", i, kv.GetKey())
		}
		criEnv = append(criEnv, kv.GetKey()+"="+string(kv.GetValue()))
	}
	var defaults []string
	if !hasEnv(p.Image.Env, "PATH") {
		defaults = append(defaults, "PATH="+DefaultPath)
	}
	hostname := p.Hostname
	if hostname == "" {
		hostname = p.SandboxConfig.GetHostname()
	}
	if hostname != "" {
		defaults = append(defaults, "HOSTNAME="+hostname)
	}
	env := mergeEnv(mergeEnv(defaults, p.Image.Env), criEnv)
	if !hasEnv(env, "HOME") {
		home := u.Home
		if home == "" {
			home = "/"
		}
		env = append(env, "HOME="+home)
	}

	cwd := cfg.GetWorkingDir()
	if cwd == "" {
		cwd = p.Image.WorkingDir
	}
	if cwd == "" {
		cwd = "/"
	}
	if !filepath.IsAbs(cwd) {
		return nil, errdefs.InvalidArgument("working_dir %q must be an absolute path", cwd)
	}
	// A working directory in /proc is how CVE-2024-21626 leaked the runtime's file descriptors (/proc/self/fd/N)
	// to the container; nothing legitimate starts there.
	if c := filepath.Clean(cwd); c == "/proc" || strings.HasPrefix(c, "/proc/") {
		return nil, errdefs.InvalidArgument("working_dir %q: a working directory under /proc is not allowed", cwd)
	}

	nofile := uint64(DefaultRlimitNofile)
	if p.Host.NofileMax > 0 && nofile > p.Host.NofileMax {
		nofile = p.Host.NofileMax
	}

	return &specs.Process{
		Terminal: cfg.GetTty(),
		User: specs.User{
			UID:            u.UID,
			GID:            u.GID,
			AdditionalGids: u.AdditionalGids,
		},
		Args: args,
		Env:  env,
		Cwd:  filepath.Clean(cwd),
		Rlimits: []specs.POSIXRlimit{
			{Type: "RLIMIT_NOFILE", Hard: nofile, Soft: nofile},
		},
		OOMScoreAdj: oomScoreAdj(p),
	}, nil
}

func oomScoreAdj(p Params) *int {
	v := int(p.Config.GetLinux().GetResources().GetOomScoreAdj())
	v = max(v, p.Host.OOMScoreAdjMin)
	v = min(max(v, -1000), 1000)
	return &v
}
