// Package config holds podhook's settings, every default in one place, and
// merges them once: flags (and, for the commands an operator types,
// PODHOOK_* environment), then the config file, then the defaults.
package config
