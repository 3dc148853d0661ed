package framework

import (
	"fmt"
	"reflect"
	"strings"

	toml "github.com/pelletier/go-toml/v2"

	"github.com/noded/noded/config"
)

// configFile returns the config file of one noded: config.Default() with the instance's settings (cgroup driver
// and parent, CNI config dir, registry mirrors), written as the keys that differ from the defaults, so that a
// test may prepend or append raw keys (Options.TopConfig, Options.Config, a test rewriting the file) without
// repeating one. TopConfig goes after the generated top-level keys and before the first table, Config last.
func configFile(o Options, cgroupParent, cniDir string) (string, error) {
	cfg := config.Default()
	cfg.CgroupDriver = o.CgroupDriver
	if cfg.CgroupDriver == "" {
		cfg.CgroupDriver = config.CgroupDriverCgroupfs
	}
	cfg.CgroupParent = cgroupParent
	cfg.CNI.ConfDir = cniDir
	for host, url := range o.Mirrors {
		cfg.Registry.Hosts[host] = config.RegistryHost{Mirrors: []config.Mirror{{URL: url}}}
	}
	changed, err := changedKeys(cfg, config.Default())
	if err != nil {
		return "", err
	}
	top, tables := map[string]any{}, map[string]any{}
	for k, v := range changed {
		if _, ok := v.(map[string]any); ok {
			tables[k] = v
		} else {
			top[k] = v
		}
	}
	var b strings.Builder
	if err := encodeTOML(&b, top); err != nil {
		return "", err
	}
	b.WriteString(o.TopConfig)
	if err := encodeTOML(&b, tables); err != nil {
		return "", err
	}
	b.WriteString(o.Config)
	return b.String(), nil
}

func encodeTOML(b *strings.Builder, m map[string]any) error {
	if len(m) == 0 {
		return nil
	}
	doc, err := toml.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	b.WriteString(dropBareParents(string(doc)))
	return nil
}

// dropBareParents removes the headers of tables that hold only sub-tables ("[registry]" before
// "[registry.hosts.'docker.io']"): the sub-table defines them implicitly, and a test's raw TOML may then still
// define the parent table (TOML refuses a table defined twice).
func dropBareParents(doc string) string {
	lines := strings.Split(doc, "\n")
	var out []string
	for i, l := range lines {
		if name, ok := strings.CutPrefix(l, "["); ok && !strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = strings.TrimSuffix(name, "]")
			next := ""
			for _, n := range lines[i+1:] {
				if strings.TrimSpace(n) != "" {
					next = strings.TrimLeft(n, "[")
					break
				}
			}
			if strings.HasPrefix(next, name+".") {
				continue
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// changedKeys returns the TOML keys of cfg whose values differ from those of base, as nested maps.
func changedKeys(cfg, base config.Config) (map[string]any, error) {
	toMap := func(c config.Config) (map[string]any, error) {
		doc, err := toml.Marshal(c)
		if err != nil {
			return nil, fmt.Errorf("encode config: %w", err)
		}
		m := map[string]any{}
		if err := toml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("decode config: %w", err)
		}
		return m, nil
	}
	got, err := toMap(cfg)
	if err != nil {
		return nil, err
	}
	def, err := toMap(base)
	if err != nil {
		return nil, err
	}
	return diff(got, def), nil
}

func diff(got, base map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range got {
		b, ok := base[k]
		if ok && reflect.DeepEqual(v, b) {
			continue
		}
		vm, vIsMap := v.(map[string]any)
		bm, bIsMap := b.(map[string]any)
		if vIsMap && bIsMap {
			if d := diff(vm, bm); len(d) > 0 {
				out[k] = d
			}
			continue
		}
		out[k] = v
	}
	return out
}
