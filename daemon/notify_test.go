package daemon

import (
	"net"
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
	sent, err := sdNotify("READY=1\nSTATUS=serving")
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

	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := sdNotify("READY=1"); sent || err != nil {
		t.Fatalf("without NOTIFY_SOCKET: %v, %v", sent, err)
	}
	t.Setenv("NOTIFY_SOCKET", "relative/path")
	if _, err := sdNotify("READY=1"); err == nil {
		t.Fatal("relative NOTIFY_SOCKET accepted")
	}
}
