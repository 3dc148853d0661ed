package daemon

import (
	"context"
	"encoding/json"
	"path/filepath"

	"k8s.io/klog/v2"

	"github.com/noded/noded/apparmor"
	"github.com/noded/noded/oci"
)

// loadAppArmor loads noded's default AppArmor profile where the kernel has AppArmor enabled, and returns the
// loader that keeps it loaded (nil elsewhere). A failed load is logged, not fatal: pods that name their
// profiles or run unconfined still work, and those asking for RuntimeDefault get FailedPrecondition with the
// reason until the profile loads.
func loadAppArmor(ctx context.Context, host oci.HostInfo, stateDir string) *apparmor.Loader {
	if !host.AppArmor {
		return nil
	}
	l := &apparmor.Loader{Dir: filepath.Join(stateDir, "apparmor")}
	if err := l.Load(ctx); err != nil {
		klog.ErrorS(err, "AppArmor is enabled but the default profile did not load; containers asking for RuntimeDefault AppArmor will fail", "profile", l.ProfileName())
	} else {
		klog.InfoS("default AppArmor profile loaded", "profile", l.ProfileName())
	}
	return l
}

// securityInfo reports the host's security modules as noded uses them, for the verbose runtime Status:
// "apparmor" is a JSON object (enabled, defaultProfile, loaded, error), "selinux" the mode.
func securityInfo(host oci.HostInfo, aa *apparmor.Loader) func() map[string]string {
	return func() map[string]string {
		var st apparmor.Status
		if host.AppArmor && aa != nil {
			st = aa.Status()
		}
		b, _ := json.Marshal(st)
		se := string(host.SELinux)
		if se == "" {
			se = "disabled"
		}
		return map[string]string{"apparmor": string(b), "selinux": se}
	}
}
