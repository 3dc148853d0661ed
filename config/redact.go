package config

import (
	"encoding/json"
	"fmt"

	toml "github.com/pelletier/go-toml/v2"
)

// Redacted is what replaces a secret in RedactedJSON.
const Redacted = "<redacted>"

// secretKeys are the keys whose values are secrets wherever they appear (registry credentials).
var secretKeys = map[string]bool{"username": true, "password": true, "identity_token": true, "registry_token": true}

// RedactedJSON returns c as a JSON object keyed like the TOML file (every key, defaults included), with
// registry credentials replaced by Redacted: for Status(verbose), which anyone who can reach the CRI socket
// reads (crictl info).
func RedactedJSON(c Config) ([]byte, error) {
	data, err := toml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		return nil, fmt.Errorf("decode config: %w", err)
	}
	redact(tree, false)
	return json.Marshal(tree)
}

// redact replaces, in place, the non-empty values of secret keys inside an auth table (inAuth) of m or below.
func redact(m map[string]any, inAuth bool) {
	for k, v := range m {
		switch v := v.(type) {
		case map[string]any:
			redact(v, inAuth || k == "auth")
		case []any:
			for _, e := range v {
				if sub, ok := e.(map[string]any); ok {
					redact(sub, inAuth)
				}
			}
		case string:
			if inAuth && secretKeys[k] && v != "" {
				m[k] = Redacted
			}
		}
	}
}
