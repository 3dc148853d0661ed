package cri

// Backends are the packages that do the work behind the RuntimeService's RPC groups. A nil backend makes its
// RPCs answer Unimplemented.
type Backends struct{}
