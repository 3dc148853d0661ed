package cri

// pods is the pod-level service: the RPCs that span a sandbox and its containers delegate to it.
func (s *RuntimeServer) pods() PodBackend { return s.Pods }
