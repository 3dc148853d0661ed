package image

// SetRegistryConfig replaces the registry mirrors and credentials used by pulls that start after it returns.
// An invalid configuration is refused and the current one kept.
func (s *Service) SetRegistryConfig(cfg RegistryConfig) error {
	if cfg.Hosts == nil {
		cfg = DefaultRegistryConfig()
	}
	return s.client.SetConfig(cfg)
}
