// Package jsonlog is a slog.Handler that writes the hook's records as
// slog's JSONHandler writes them, byte for byte, without encoding/json.
package jsonlog
