package registry

import (
	"strings"
	"testing"

	"github.com/noded/noded/image/reference"
)

func endpointList(c *Client, ref reference.Reference) string {
	var got []string
	for _, ep := range c.endpoints(ref) {
		got = append(got, ep.String())
	}
	return strings.Join(got, " ")
}

func TestSetConfigReplacesMirrorsAndKeepsOldOnError(t *testing.T) {
	c, err := New(Config{Hosts: map[string]HostConfig{"docker.io": {Mirrors: []Endpoint{{URL: "http://a"}}, MirrorsOnly: true}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := reference.Parse("busybox")
	if got := endpointList(c, ref); got != "http://a" {
		t.Fatalf("before: endpoints = %q", got)
	}
	if err := c.SetConfig(Config{Hosts: map[string]HostConfig{"index.docker.io": {
		Mirrors: []Endpoint{{URL: "http://b"}}, Auth: &Credentials{Username: "u", Password: "p"}}}}); err != nil {
		t.Fatal(err)
	}
	if got := endpointList(c, ref); got != "http://b https://registry-1.docker.io" {
		t.Fatalf("after SetConfig: endpoints = %q", got)
	}
	if ac, _ := c.authFor(ref, c.endpoints(ref)[1], nil).Authorization(); ac.Username != "u" {
		t.Fatalf("credentials of the new config not used: %+v", ac)
	}
	if err := c.SetConfig(Config{Hosts: map[string]HostConfig{"docker.io": {MirrorsOnly: true}}}); err == nil {
		t.Fatal("invalid config accepted")
	}
	if got := endpointList(c, ref); got != "http://b https://registry-1.docker.io" {
		t.Fatalf("invalid SetConfig changed endpoints: %q", got)
	}
}
