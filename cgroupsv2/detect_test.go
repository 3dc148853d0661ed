package cgroupsv2

import "testing"

func TestChooseDriver(t *testing.T) {
	cases := []struct {
		conf    string
		host    Host
		want    string
		wantErr bool
	}{
		{"auto", Host{SystemdPID1: true, Unified: true}, DriverSystemd, false},
		{"auto", Host{SystemdPID1: true, Unified: false}, DriverCgroupfs, false},
		{"auto", Host{SystemdPID1: false, Unified: true}, DriverCgroupfs, false},
		{"", Host{}, DriverCgroupfs, false},
		{"cgroupfs", Host{SystemdPID1: true, Unified: true}, DriverCgroupfs, false},
		{"systemd", Host{SystemdPID1: true}, DriverSystemd, false},
		{"systemd", Host{}, "", true},
		{"upstart", Host{}, "", true},
	}
	for _, c := range cases {
		got, err := ChooseDriver(c.conf, c.host)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("ChooseDriver(%q, %+v) = %q, %v; want %q (err %v)", c.conf, c.host, got, err, c.want, c.wantErr)
		}
	}
}
