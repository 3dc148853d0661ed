package apparmor

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/noded/noded/errdefs"
)

// ProfilesFile lists the profiles loaded in the kernel, one "name (mode)" per line.
const ProfilesFile = "/sys/kernel/security/apparmor/profiles"

// Loader keeps the default profile loaded. Safe for concurrent use.
type Loader struct {
	// Name is the profile's name (DefaultProfile when empty).
	Name string
	// Parser is the apparmor_parser binary ("" looks it up in PATH, then in /sbin and /usr/sbin).
	Parser string
	// Dir is where the profile text is written before it is loaded (the operator can read it there).
	Dir string
	// Profiles is the kernel's list of loaded profiles (ProfilesFile when empty).
	Profiles string

	mu      sync.Mutex
	lastErr error
}

func (l *Loader) name() string {
	if l.Name == "" {
		return DefaultProfile
	}
	return l.Name
}

// ProfileName is the name of the profile this loader keeps loaded.
func (l *Loader) ProfileName() string { return l.name() }

func (l *Loader) profiles() string {
	if l.Profiles == "" {
		return ProfilesFile
	}
	return l.Profiles
}

func (l *Loader) parser() (string, error) {
	if l.Parser != "" {
		return l.Parser, nil
	}
	if p, err := exec.LookPath("apparmor_parser"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/sbin/apparmor_parser", "/usr/sbin/apparmor_parser"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errdefs.FailedPrecondition("apparmor: apparmor_parser not found (install the apparmor package)")
}

// IsLoaded reports whether a profile named name is loaded, according to the kernel's list in path.
func IsLoaded(path, name string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, fmt.Errorf("apparmor: read loaded profiles: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// "<name> (<mode>)"; names may contain spaces, the mode is the last field.
		line := sc.Text()
		if i := strings.LastIndex(line, " ("); i >= 0 && line[:i] == name {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("apparmor: read loaded profiles: %w", err)
	}
	return false, nil
}

// Load writes the profile into Dir and loads it into the kernel, replacing a loaded profile of the same name
// (so that the text of this noded is the one in force).
func (l *Loader) Load(ctx context.Context) error {
	err := l.load(ctx)
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
	return err
}

func (l *Loader) load(ctx context.Context) error {
	text, err := Profile(l.name())
	if err != nil {
		return err
	}
	parser, err := l.parser()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(l.Dir, 0o700); err != nil {
		return fmt.Errorf("apparmor: %w", err)
	}
	path := filepath.Join(l.Dir, l.name())
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, text, 0o600); err != nil {
		return fmt.Errorf("apparmor: write profile: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("apparmor: write profile: %w", err)
	}
	// -r replaces a loaded profile of the name, -K leaves the parser's cache alone.
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, parser, "-Kr", path)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return errdefs.FailedPrecondition("apparmor: load profile %s with %s: %v: %s", l.name(), parser, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Ensure loads the profile unless the kernel has it loaded, and returns its name.
func (l *Loader) Ensure(ctx context.Context) (string, error) {
	ok, err := IsLoaded(l.profiles(), l.name())
	if err == nil && ok {
		return l.name(), nil
	}
	if err := l.Load(ctx); err != nil {
		return "", err
	}
	if ok, err := IsLoaded(l.profiles(), l.name()); err != nil || !ok {
		if err == nil {
			err = errors.New("not listed after loading")
		}
		return "", errdefs.FailedPrecondition("apparmor: profile %s: %v", l.name(), err)
	}
	return l.name(), nil
}

// Status describes the default profile for the runtime's verbose status.
type Status struct {
	Enabled        bool   `json:"enabled"`
	DefaultProfile string `json:"defaultProfile,omitempty"`
	Loaded         bool   `json:"loaded"`
	Error          string `json:"error,omitempty"`
}

// Status reports whether the profile is loaded now, and the error of the last load if it failed.
func (l *Loader) Status() Status {
	st := Status{Enabled: true, DefaultProfile: l.name()}
	ok, err := IsLoaded(l.profiles(), l.name())
	st.Loaded = err == nil && ok
	l.mu.Lock()
	lastErr := l.lastErr
	l.mu.Unlock()
	switch {
	case err != nil:
		st.Error = err.Error()
	case !ok && lastErr != nil:
		st.Error = lastErr.Error()
	}
	return st
}
