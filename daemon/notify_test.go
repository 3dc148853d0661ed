package daemon

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestSdNotifySendsStateToNotifySocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	l, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t.Setenv("NOTIFY_SOCKET", path)
	sock := takeNotifySocket()
	if sock != path {
		t.Fatalf("takeNotifySocket = %q", sock)
	}
	if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Fatalf("NOTIFY_SOCKET still set (%q): runc would inherit it", v)
	}
	sent, err := sdNotify(sock, "READY=1\nSTATUS=serving")
	if err != nil || !sent {
		t.Fatalf("sdNotify = %v, %v", sent, err)
	}
	buf := make([]byte, 128)
	n, err := l.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(buf[:n]); got != "READY=1\nSTATUS=serving" {
		t.Fatalf("received %q", got)
	}
	if sent, err := sdNotify("", "READY=1"); sent || err != nil {
		t.Fatalf("without a socket: %v, %v", sent, err)
	}
	if _, err := sdNotify("relative/path", "READY=1"); err == nil {
		t.Fatal("relative NOTIFY_SOCKET accepted")
	}
}
