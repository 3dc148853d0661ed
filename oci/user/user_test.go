package user

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/noded/noded/errdefs"
)

const testPasswd = `root:x:0:0:root:/root:/bin/sh
# a comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
app:x:1000:1000:App:/home/app:/bin/sh
other:x:2000:2500::/home/other:/bin/sh
`

const testGroup = `root:x:0:
daemon:x:1:
app:x:1000:
wheel:x:10:root,app
audio:x:29:app
video:x:44:other
bad:x:notanumber:app
`

func mkRootfs(t *testing.T, passwd, group string) string {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if passwd != "" {
		if err := os.WriteFile(filepath.Join(root, "etc/passwd"), []byte(passwd), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if group != "" {
		if err := os.WriteFile(filepath.Join(root, "etc/group"), []byte(group), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func i64(v int64) *int64 { return &v }

func TestResolve(t *testing.T) {
	root := mkRootfs(t, testPasswd, testGroup)
	tests := []struct {
		name    string
		req     Request
		uid     uint32
		gid     uint32
		gids    []uint32
		user    string
		wantErr bool
	}{
		{name: "default root", req: Request{}, uid: 0, gid: 0, gids: []uint32{0, 10}, user: "root"},
		{name: "image numeric user in passwd", req: Request{ImageUser: "1000"}, uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, user: "app"},
		{name: "image numeric user not in passwd", req: Request{ImageUser: "4242"}, uid: 4242, gid: 0, gids: []uint32{0}},
		{name: "image name", req: Request{ImageUser: "app"}, uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, user: "app"},
		{name: "image uid:gid", req: Request{ImageUser: "1000:44"}, uid: 1000, gid: 44, gids: []uint32{44, 10, 29}, user: "app"},
		{name: "image name:group", req: Request{ImageUser: "other:audio"}, uid: 2000, gid: 29, gids: []uint32{29, 44}, user: "other"},
		{name: "image unknown name", req: Request{ImageUser: "nobody"}, wantErr: true},
		{name: "image unknown group", req: Request{ImageUser: "app:nogroup"}, wantErr: true},
		{name: "image empty user part", req: Request{ImageUser: ":10"}, wantErr: true},
		{name: "run_as_user overrides image", req: Request{RunAsUser: i64(2000), ImageUser: "app"}, uid: 2000, gid: 2500, gids: []uint32{2500, 44}, user: "other"},
		{name: "run_as_user unknown", req: Request{RunAsUser: i64(5555)}, uid: 5555, gid: 0, gids: []uint32{0}},
		{name: "run_as_user + group", req: Request{RunAsUser: i64(1000), RunAsGroup: i64(3000)}, uid: 1000, gid: 3000, gids: []uint32{3000, 10, 29}, user: "app"},
		{name: "run_as_username", req: Request{RunAsUsername: "app"}, uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29}, user: "app"},
		{name: "run_as_username missing", req: Request{RunAsUsername: "ghost"}, wantErr: true},
		{name: "both user fields", req: Request{RunAsUsername: "app", RunAsUser: i64(1)}, wantErr: true},
		{name: "group without user", req: Request{RunAsGroup: i64(5), ImageUser: "app"}, wantErr: true},
		{name: "negative uid", req: Request{RunAsUser: i64(-1)}, wantErr: true},
		{name: "merge adds supplemental", req: Request{ImageUser: "app", SupplementalGroups: []int64{5000, 10}}, uid: 1000, gid: 1000, gids: []uint32{1000, 10, 29, 5000}, user: "app"},
		{name: "strict ignores /etc/group", req: Request{ImageUser: "app", SupplementalGroups: []int64{5000}, Strict: true}, uid: 1000, gid: 1000, gids: []uint32{1000, 5000}, user: "app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Resolve(root, tc.req)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("expected error, got %+v", got)
				}
				if !errdefs.IsInvalidArgument(err) {
					t.Fatalf("want InvalidArgument, got %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != tc.uid || got.GID != tc.gid || !slices.Equal(got.AdditionalGids, tc.gids) || got.Name != tc.user {
				t.Fatalf("got %+v, want uid=%d gid=%d gids=%v name=%q", got, tc.uid, tc.gid, tc.gids, tc.user)
			}
		})
	}
}

func TestResolveNoEtcFiles(t *testing.T) {
	root := t.TempDir()
	got, err := Resolve(root, Request{ImageUser: "123:456"})
	if err != nil {
		t.Fatal(err)
	}
	if got.UID != 123 || got.GID != 456 || !slices.Equal(got.AdditionalGids, []uint32{456}) {
		t.Fatalf("got %+v", got)
	}
	if _, err := Resolve(root, Request{ImageUser: "app"}); !errdefs.IsInvalidArgument(err) {
		t.Fatalf("named user without passwd: %v", err)
	}
}

// The rootfs is untrusted: symlinks must be resolved inside it, never on the host.
func TestSymlinkEscape(t *testing.T) {
	host := t.TempDir()
	hostPasswd := filepath.Join(host, "passwd")
	if err := os.WriteFile(hostPasswd, []byte("evil:x:4242:4242::/:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"absolute": hostPasswd,
		"relative": "../../../../../../../../.." + hostPasswd,
	} {
		t.Run(name, func(t *testing.T) {
			root := mkRootfs(t, "", "")
			if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			// The host file must not be read: "evil" is unknown inside the rootfs.
			if _, err := Resolve(root, Request{ImageUser: "evil"}); !errdefs.IsInvalidArgument(err) {
				t.Fatalf("host passwd was read through the symlink: %v", err)
			}
			// The same path inside the rootfs is what the symlink really refers to.
			inRoot := filepath.Join(root, hostPasswd)
			if err := os.MkdirAll(filepath.Dir(inRoot), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(inRoot, []byte("good:x:77:78::/:/bin/sh\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			got, err := Resolve(root, Request{ImageUser: "good"})
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != 77 || got.GID != 78 {
				t.Fatalf("got %+v", got)
			}
		})
	}
}

func TestSymlinkedEtcDir(t *testing.T) {
	host := t.TempDir()
	if err := os.WriteFile(filepath.Join(host, "group"), []byte("evil:x:99:root\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.Symlink(host, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	got, err := Resolve(root, Request{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.AdditionalGids, []uint32{0}) {
		t.Fatalf("host /etc/group leaked into groups: %v", got.AdditionalGids)
	}
}

func TestOpenInRootRefusesNonRegular(t *testing.T) {
	root := mkRootfs(t, "", "")
	if err := os.Mkdir(filepath.Join(root, "etc/passwd"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPasswd(root); err == nil {
		t.Fatal("directory accepted as /etc/passwd")
	}
}
