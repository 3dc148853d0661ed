package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noded/noded/version"
)

func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestVersionShowsNodedAndHelperVersions(t *testing.T) {
	dir := t.TempDir()
	writeScript(t, filepath.Join(dir, "bin", "runc"), `printf 'runc version 9.8.7\ncommit: v9.8.7\nspec: 1.2.3\n'`)
	writeScript(t, filepath.Join(dir, "bin", "conmon"), `printf 'conmon version 2.3.4\ncommit: abc\n'`)
	writeScript(t, filepath.Join(dir, "cni", "bridge"), `printf 'CNI bridge plugin v1.5.0\nCNI protocol versions supported: 0.1.0, 0.4.0, 1.0.0\n' >&2`)
	writeScript(t, filepath.Join(dir, "cni", "portmap"), `printf 'CNI portmap plugin v1.5.0\nCNI protocol versions supported: 0.1.0, 0.4.0, 1.0.0\n' >&2`)
	writeScript(t, filepath.Join(dir, "cni", "odd"), `echo something else`)
	cfg := fmt.Sprintf(`default_runtime = "runc"
conmon = %q
[runtimes.runc]
path = %q
[runtimes.kata]
path = "/nonexistent/kata-runtime"
[cni]
bin_dirs = [%q, %q]
`, filepath.Join(dir, "bin", "conmon"), filepath.Join(dir, "bin", "runc"), filepath.Join(dir, "cni"), filepath.Join(dir, "nocni"))
	cfgPath := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	old := version.GitCommit
	version.GitCommit = "0123abcd"
	defer func() { version.GitCommit = old }()

	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfgPath, "--version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	got := out.String()
	for _, want := range []string{
		"noded " + version.Version + "\n",
		"commit: 0123abcd\n",
		"runtime runc (default): " + filepath.Join(dir, "bin", "runc") + ": runc version 9.8.7 (spec 1.2.3)\n",
		"runtime kata: /nonexistent/kata-runtime: not found\n",
		"conmon: " + filepath.Join(dir, "bin", "conmon") + ": conmon version 2.3.4\n",
		"cni plugins " + filepath.Join(dir, "cni") + ": bridge portmap (v1.5.0; protocol 0.1.0..1.0.0); odd (version unknown)\n",
		"cni plugins " + filepath.Join(dir, "nocni") + ": directory not found\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("--version output lacks %q:\n%s", want, got)
		}
	}
}

func TestVersionWithBadConfigStillAnswers(t *testing.T) {
	cfgPath := filepath.Join(t.TempDir(), "config.toml")
	if err := os.WriteFile(cfgPath, []byte("bogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"--config", cfgPath, "--version"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "noded "+version.Version) || !strings.Contains(out.String(), `unknown key "bogus"`) {
		t.Fatalf("output:\n%s", out.String())
	}
}
