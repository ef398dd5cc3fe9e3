// Package runtimeconf patches container runtime configuration files for
// podhook: it enables NRI in containerd's config.toml and adds podhook's
// hooks dir to CRI-O's, changing only what it must and leaving every other
// line of the file as it was.
package runtimeconf
