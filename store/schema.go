package store

import "github.com/noded/noded/internal/boltschema"

// Schema versions the sandbox and container buckets of the state database. Version 1 is the first layout:
// top-level buckets "sandboxes" and "containers", one JSON record per ID with the CRI config proto-encoded
// inside (see records.go). Add a migration and raise Current when that layout changes; Open applies it.
var Schema = boltschema.Schema{Name: "state", Current: 1}
