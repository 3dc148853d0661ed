package oci

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/noded/noded/errdefs"
)

// fakeSysfs builds the files DetectLSM reads below a fresh root.
func fakeSysfs(t *testing.T, apparmorDir bool, apparmorParam, selinuxEnforce string) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, data string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if apparmorDir {
		if err := os.MkdirAll(filepath.Join(root, "sys/kernel/security/apparmor"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if apparmorParam != "" {
		write("sys/module/apparmor/parameters/enabled", apparmorParam)
	}
	if selinuxEnforce != "" {
		write("sys/fs/selinux/enforce", selinuxEnforce)
	}
	return root
}

func TestDetectLSM(t *testing.T) {
	for _, c := range []struct {
		name        string
		aaDir       bool
		aaParam     string
		enforce     string
		wantAA      bool
		wantSELinux SELinuxMode
	}{
		{"nothing", false, "", "", false, SELinuxDisabled},
		{"apparmor", true, "Y\n", "", true, SELinuxDisabled},
		{"apparmor module disabled", true, "N\n", "", false, SELinuxDisabled},
		// Built in but not the active major LSM: the module parameter exists, securityfs has no apparmor dir.
		{"apparmor not active", false, "Y\n", "", false, SELinuxDisabled},
		{"selinux enforcing", false, "", "1", false, SELinuxEnforcing},
		{"selinux permissive", false, "", "0\n", false, SELinuxPermissive},
		{"selinux garbage", false, "", "x", false, SELinuxDisabled},
		{"both", true, "Y", "1", true, SELinuxEnforcing},
	} {
		t.Run(c.name, func(t *testing.T) {
			aa, se := DetectLSM(fakeSysfs(t, c.aaDir, c.aaParam, c.enforce))
			if aa != c.wantAA || se != c.wantSELinux {
				t.Errorf("DetectLSM = %v, %q; want %v, %q", aa, se, c.wantAA, c.wantSELinux)
			}
		})
	}
}

// RuntimeDefault AppArmor (also what an unset profile means) on hosts with and without AppArmor, with and
// without the default profile loaded, for unprivileged and privileged containers.
func TestAppArmorDecisions(t *testing.T) {
	const def = "noded-default"
	type want struct {
		profile string
		code    error // errdefs kind, nil for success
	}
	runtimeDefault := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_RuntimeDefault}
	localhost := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Localhost, LocalhostRef: "my-prof"}
	unconfined := &runtimeapi.SecurityProfile{ProfileType: runtimeapi.SecurityProfile_Unconfined}
	for _, c := range []struct {
		name       string
		hostAA     bool
		loaded     string
		privileged bool
		prof       *runtimeapi.SecurityProfile
		legacy     string
		want       want
	}{
		{"no apparmor: runtime default stays unconfined", false, "", false, runtimeDefault, "", want{"", nil}},
		{"no apparmor: unset stays unconfined", false, "", false, nil, "", want{"", nil}},
		{"no apparmor: localhost refused", false, "", false, localhost, "", want{"", errdefs.ErrInvalidArgument}},
		{"apparmor: runtime default applied", true, def, false, runtimeDefault, "", want{def, nil}},
		{"apparmor: unset means runtime default", true, def, false, nil, "", want{def, nil}},
		{"apparmor: legacy runtime/default", true, def, false, nil, "runtime/default", want{def, nil}},
		{"apparmor: legacy unconfined", true, def, false, nil, "unconfined", want{"", nil}},
		{"apparmor: legacy localhost", true, def, false, nil, "localhost/my-prof", want{"my-prof", nil}},
		{"apparmor: unconfined", true, def, false, unconfined, "", want{"", nil}},
		{"apparmor: localhost", true, def, false, localhost, "", want{"my-prof", nil}},
		{"apparmor: default not loaded fails", true, "", false, runtimeDefault, "", want{"", errdefs.ErrFailedPrecondition}},
		{"apparmor: unset and default not loaded fails", true, "", false, nil, "", want{"", errdefs.ErrFailedPrecondition}},
		{"apparmor: privileged runs unconfined", true, def, true, runtimeDefault, "", want{"", nil}},
		{"apparmor: privileged without loaded default", true, "", true, nil, "", want{"", nil}},
		{"apparmor: privileged keeps a named profile", true, def, true, localhost, "", want{"my-prof", nil}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := testParams(t)
			p.Host.AppArmor = c.hostAA
			p.AppArmorDefaultProfile = c.loaded
			if c.privileged {
				p.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{Privileged: true}}
			}
			sc(&p).Privileged = c.privileged
			sc(&p).Apparmor = c.prof
			//lint:ignore SA1019 the deprecated field is still sent by older kubelets
			sc(&p).ApparmorProfile = c.legacy
			s, err := Build(p)
			if c.want.code != nil {
				if !errorsIs(err, c.want.code) {
					t.Fatalf("Build: %v, want %v", err, c.want.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s.Process.ApparmorProfile != c.want.profile {
				t.Errorf("apparmor profile %q, want %q", s.Process.ApparmorProfile, c.want.profile)
			}
		})
	}
}

// SELinux labels are refused with FailedPrecondition where SELinux is enforcing, and ignored (as before) where
// it is permissive or off.
func TestSELinuxDecisions(t *testing.T) {
	label := &runtimeapi.SELinuxOption{Type: "container_t", Level: "s0:c1,c2"}
	type req struct {
		ctrLabel, podLabel, relabel, emptyLabel bool
	}
	for _, mode := range []SELinuxMode{SELinuxDisabled, SELinuxPermissive, SELinuxEnforcing} {
		for _, r := range []req{{}, {ctrLabel: true}, {podLabel: true}, {relabel: true}, {emptyLabel: true}} {
			p := testParams(t)
			p.Host.SELinux = mode
			if r.ctrLabel {
				sc(&p).SelinuxOptions = label
			}
			if r.emptyLabel {
				sc(&p).SelinuxOptions = &runtimeapi.SELinuxOption{}
			}
			if r.podLabel {
				p.SandboxConfig.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{SelinuxOptions: label}}
			}
			if r.relabel {
				p.Config.Mounts = []*runtimeapi.Mount{{ContainerPath: "/data", HostPath: t.TempDir(), SelinuxRelabel: true}}
			}
			_, err := Build(p)
			asks := r.ctrLabel || r.podLabel || r.relabel
			if mode == SELinuxEnforcing && asks {
				if !errorsIs(err, errdefs.ErrFailedPrecondition) {
					t.Errorf("%s %+v: %v, want FailedPrecondition", mode, r, err)
				}
			} else if err != nil {
				t.Errorf("%q %+v: %v", mode, r, err)
			}
			podErr := CheckPodSELinux(p.Host, p.SandboxConfig)
			if wantErr := mode == SELinuxEnforcing && r.podLabel; (podErr != nil) != wantErr || (wantErr && !errorsIs(podErr, errdefs.ErrFailedPrecondition)) {
				t.Errorf("CheckPodSELinux %q %+v: %v", mode, r, podErr)
			}
		}
	}
}

func errorsIs(err, target error) bool { return err != nil && errors.Is(err, target) }
