package apparmor

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/noded/noded/errdefs"
)

// The generated profile is valid AppArmor policy: apparmor_parser compiles it (-Q: without loading it, which
// needs no AppArmor in the kernel). hack/install-deps.sh installs the parser (Debian's apparmor package).
func TestProfileCompilesWithApparmorParser(t *testing.T) {
	parser, err := (&Loader{}).parser()
	if err != nil {
		t.Skipf("%v", err)
	}
	for _, name := range []string{DefaultProfile, "noded-test.v2"} {
		text, err := Profile(name)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
		// -K: no cache; -Q: compile only. The parser also prints the compiled profile's name with --names.
		out, err := exec.Command(parser, "-Q", "-K", path).CombinedOutput()
		if err != nil {
			t.Fatalf("apparmor_parser rejects the profile: %v\n%s\n--- profile ---\n%s", err, out, text)
		}
		names, err := exec.Command(parser, "-N", path).Output()
		if err != nil || strings.TrimSpace(string(names)) != name {
			t.Fatalf("apparmor_parser -N = %q, %v; want %q", names, err, name)
		}
	}
}

// The parser check above can fail: a broken profile is rejected.
func TestApparmorParserRejectsBrokenProfile(t *testing.T) {
	parser, err := (&Loader{}).parser()
	if err != nil {
		t.Skipf("%v", err)
	}
	text, _ := Profile(DefaultProfile)
	broken := strings.Replace(string(text), "ptrace (trace, read,", "ptrace (trace, bogus,", 1)
	path := filepath.Join(t.TempDir(), "broken")
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(parser, "-Q", "-K", path).CombinedOutput(); err == nil {
		t.Fatalf("a broken profile compiled:\n%s", out)
	}
}

// The rules the profile exists for are in it (a change that drops one must change this test too).
func TestProfileDeniesHostKnobsMountAndForeignPtrace(t *testing.T) {
	text, err := Profile("p1")
	if err != nil {
		t.Fatal(err)
	}
	s := string(text)
	for _, rule := range []string{
		"abi <abi/3.0>,",
		"profile p1 flags=(attach_disconnected,mediate_deleted) {",
		"deny mount,", "deny umount,", "deny pivot_root,",
		"deny /proc/* wl,", "deny /proc/[^0-9]*/** wl,", "deny /proc/sys/** wl,", "deny /proc/sysrq-trigger rwklx,",
		"deny /proc/kcore rwklx,", "deny /sys/** wkl,", "deny /sys/kernel/security/** rwklx,",
		"signal (send, receive) peer=p1,", "ptrace (trace, read, tracedby, readby) peer=p1,",
	} {
		if !strings.Contains(s, "\n  "+rule+"\n") && !strings.Contains(s, rule+"\n") {
			t.Errorf("profile lacks %q", rule)
		}
	}
	// No blanket grants that would undo the denials or allow leaving the profile.
	for _, bad := range []string{"\n  mount,", "\n  ptrace,", "\n  signal,", "change_profile", "-> unconfined", "#include"} {
		if strings.Contains(s, bad) {
			t.Errorf("profile has %q", bad)
		}
	}
}

func TestProfileRejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "a b", "x{", "-x", "a\nb", "a,"} {
		if _, err := Profile(name); err == nil {
			t.Errorf("Profile(%q) accepted", name)
		}
	}
}

func TestIsLoaded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "profiles")
	data := "/usr/bin/man (enforce)\nnoded-default-old (complain)\nwith space (enforce)\nnoded-default (enforce)\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"noded-default": true, "with space": true, "noded": false, "/usr/bin/man": true, "enforce": false} {
		if got, err := IsLoaded(path, name); err != nil || got != want {
			t.Errorf("IsLoaded(%q) = %v, %v; want %v", name, got, err, want)
		}
	}
	if _, err := IsLoaded(filepath.Join(t.TempDir(), "absent"), "x"); err == nil {
		t.Error("missing profiles file: no error")
	}
}

// fakeParser is an apparmor_parser that records its arguments and "loads" the profile by adding it to the
// profiles file (or fails with exit 1 when fail is set).
func fakeParser(t *testing.T, fail bool) (parser, profiles, calls string) {
	t.Helper()
	dir := t.TempDir()
	profiles, calls = filepath.Join(dir, "profiles"), filepath.Join(dir, "calls")
	if err := os.WriteFile(profiles, []byte("other (enforce)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$@\" >> " + calls + "\n"
	if fail {
		script += "echo 'parser error: line 3' >&2\nexit 1\n"
	} else {
		script += "grep -q '^profile ' \"$2\" || exit 2\necho \"$(basename \"$2\") (enforce)\" >> " + profiles + "\n"
	}
	parser = filepath.Join(dir, "apparmor_parser")
	if err := os.WriteFile(parser, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return parser, profiles, calls
}

func readCalls(t *testing.T, path string) []string {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestEnsureLoadsOnceAndReportsStatus(t *testing.T) {
	parser, profiles, calls := fakeParser(t, false)
	dir := filepath.Join(t.TempDir(), "apparmor")
	l := &Loader{Parser: parser, Dir: dir, Profiles: profiles}
	if st := l.Status(); st.Loaded || !st.Enabled || st.DefaultProfile != DefaultProfile || st.Error != "" {
		t.Errorf("status before load: %+v", st)
	}
	for i := 0; i < 2; i++ {
		name, err := l.Ensure(context.Background())
		if err != nil || name != DefaultProfile {
			t.Fatalf("Ensure = %q, %v", name, err)
		}
	}
	want := "-Kr " + filepath.Join(dir, DefaultProfile)
	if c := readCalls(t, calls); len(c) != 1 || c[0] != want {
		t.Errorf("parser calls %q, want one %q", c, want)
	}
	text, _ := Profile(DefaultProfile)
	if b, err := os.ReadFile(filepath.Join(dir, DefaultProfile)); err != nil || string(b) != string(text) {
		t.Errorf("profile file: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("profile dir mode: %v %v", fi.Mode(), err)
	}
	if st := l.Status(); !st.Loaded || st.Error != "" {
		t.Errorf("status after load: %+v", st)
	}
	// Load always replaces (the start of a new noded puts its own text in force).
	if err := l.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := readCalls(t, calls); len(c) != 2 {
		t.Errorf("parser calls after Load: %q", c)
	}
}

func TestEnsureFailsClearlyWhenTheProfileCannotBeLoaded(t *testing.T) {
	parser, profiles, _ := fakeParser(t, true)
	l := &Loader{Parser: parser, Dir: t.TempDir(), Profiles: profiles}
	_, err := l.Ensure(context.Background())
	if !errors.Is(err, errdefs.ErrFailedPrecondition) || !strings.Contains(err.Error(), "parser error: line 3") {
		t.Fatalf("Ensure with a failing parser: %v", err)
	}
	if st := l.Status(); st.Loaded || !strings.Contains(st.Error, "parser error") {
		t.Errorf("status: %+v", st)
	}

	// A parser that exits 0 without loading anything is caught too.
	okParser := filepath.Join(t.TempDir(), "apparmor_parser")
	if err := os.WriteFile(okParser, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	l = &Loader{Parser: okParser, Dir: t.TempDir(), Profiles: profiles}
	if _, err := l.Ensure(context.Background()); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Ensure with a parser that loads nothing: %v", err)
	}

	l = &Loader{Parser: filepath.Join(t.TempDir(), "absent"), Dir: t.TempDir(), Profiles: profiles}
	if _, err := l.Ensure(context.Background()); err == nil {
		t.Fatal("Ensure with a missing parser: no error")
	}
}
