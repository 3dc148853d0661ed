package cri

import (
	"context"
	"encoding/json"

	"k8s.io/klog/v2"
)

// VerboseInfo are the parts of Status(verbose) info beyond the cgroup driver and pod CIDR. Each becomes one key
// of the info map holding a JSON value, as crictl info expects; a nil func leaves its key out.
type VerboseInfo struct {
	// Config returns the effective configuration as a JSON object, secrets redacted (key "config").
	Config func() ([]byte, error)
	// Features returns what the host and each runtime handler can do and why a feature is off (key "features").
	Features func(ctx context.Context) any
}

// addVerboseInfo adds the VerboseInfo keys to info. A part that fails is logged and left out: Status answers.
func (s *RuntimeServer) addVerboseInfo(ctx context.Context, info map[string]string) {
	v := s.info.Verbose
	if v.Config != nil {
		if b, err := v.Config(); err != nil {
			klog.ErrorS(err, "Status: encode the effective configuration")
		} else {
			info["config"] = string(b)
		}
	}
	if v.Features != nil {
		if b, err := json.Marshal(v.Features(ctx)); err != nil {
			klog.ErrorS(err, "Status: encode the features")
		} else {
			info["features"] = string(b)
		}
	}
}
