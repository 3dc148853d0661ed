package cri

import "github.com/noded/noded/pod"

// pods is the pod-level service over the backends: the RPCs that span a sandbox and its containers delegate to it.
func (s *RuntimeServer) pods() *pod.Service { return pod.New(s.Sandboxes, s.Containers, s.Store) }
