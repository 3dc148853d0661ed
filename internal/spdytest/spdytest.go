// Package spdytest is the client side of kubelet's streaming protocols, for tests of noded's streaming server.
package spdytest

import (
	"net/http"
	"testing"

	"k8s.io/streaming/pkg/httpstream"
	"k8s.io/streaming/pkg/httpstream/spdy"
)

// Dial upgrades a streaming URL (from Exec, Attach or PortForward) to a SPDY connection speaking protocol
// (e.g. "v4.channel.k8s.io" or "portforward.k8s.io"), as kubelet's client does.
func Dial(t testing.TB, url, protocol string) httpstream.Connection {
	t.Helper()
	rt, err := spdy.NewRoundTripper(nil)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, protocol)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := rt.NewConnection(resp)
	if err != nil {
		t.Fatalf("upgrade %s: %v", url, err)
	}
	return conn
}
