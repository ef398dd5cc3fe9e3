// Package config holds podhook's settings, every default in one place, and
// resolves them once: flags, then PODHOOK_* environment, then the config
// file, then the defaults.
package config
