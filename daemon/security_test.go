package daemon

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/noded/noded/apparmor"
	"github.com/noded/noded/oci"
)

func TestSecurityInfo(t *testing.T) {
	profiles := filepath.Join(t.TempDir(), "profiles")
	if err := os.WriteFile(profiles, []byte(apparmor.DefaultProfile+" (enforce)\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	aa := &apparmor.Loader{Profiles: profiles}
	for _, c := range []struct {
		host        oci.HostInfo
		aa          *apparmor.Loader
		wantAA      apparmor.Status
		wantSELinux string
	}{
		{oci.HostInfo{}, nil, apparmor.Status{}, "disabled"},
		{oci.HostInfo{SELinux: oci.SELinuxEnforcing}, nil, apparmor.Status{}, "enforcing"},
		{oci.HostInfo{AppArmor: true, SELinux: oci.SELinuxPermissive}, aa,
			apparmor.Status{Enabled: true, DefaultProfile: apparmor.DefaultProfile, Loaded: true}, "permissive"},
	} {
		info := securityInfo(c.host, c.aa)()
		var got apparmor.Status
		if err := json.Unmarshal([]byte(info["apparmor"]), &got); err != nil || got != c.wantAA || info["selinux"] != c.wantSELinux {
			t.Errorf("host %+v: info %v (%v), want apparmor %+v selinux %s", c.host, info, err, c.wantAA, c.wantSELinux)
		}
	}
}

// Without AppArmor nothing is loaded (no apparmor_parser is run).
func TestLoadAppArmorOnlyWhereEnabled(t *testing.T) {
	if l := loadAppArmor(context.Background(), oci.HostInfo{}, t.TempDir()); l != nil {
		t.Fatalf("loader on a host without AppArmor: %+v", l)
	}
}
