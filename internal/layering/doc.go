// Package layering holds the test that encodes noded's import rules (see docs/architecture.md). It has no code.
package layering
